//! Start order of the services: a stable topological sort on `after`.
//!
//! Among the services whose dependencies are started, the one declared
//! first goes next, so the declaration order is kept wherever `after`
//! allows it. A name in `after` that names no service is reported and
//! ignored. A cycle is reported and broken by starting the first declared
//! service still waiting, then carrying on: the services of a cycle start
//! in declaration order and every other constraint still holds.

use wanflash_schema::system::Service;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `service` is to start after `missing`, which is not a service.
    UnknownAfter { service: String, missing: String },
    /// Two services with one name: `after` refers to the first one.
    DuplicateName { name: String },
    /// These services wait on one another (declaration order).
    Cycle { services: Vec<String> },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::UnknownAfter { service, missing } => write!(
                f,
                "service `{service}` is to start after `{missing}`, which is not a service; ignored"
            ),
            Problem::DuplicateName { name } => {
                write!(
                    f,
                    "two services are named `{name}`; `after` refers to the first"
                )
            }
            Problem::Cycle { services } => write!(
                f,
                "dependency cycle in `after` among {}; started in declaration order",
                services
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Indexes into `services`, in start order, and what was wrong.
pub fn start_order(services: &[Service]) -> (Vec<usize>, Vec<Problem>) {
    let mut problems = Vec::new();
    // The first service of a name (a handful of services: no map needed).
    let by_name = |name: &str| services.iter().position(|s| s.name == name);
    for (i, s) in services.iter().enumerate() {
        if by_name(&s.name) != Some(i) {
            problems.push(Problem::DuplicateName {
                name: s.name.clone(),
            });
        }
    }
    // deps[i]: indexes i waits for (deduplicated).
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    for (i, s) in services.iter().enumerate() {
        for a in &s.after {
            match by_name(a) {
                Some(j) => {
                    if !deps[i].contains(&j) {
                        deps[i].push(j);
                    }
                }
                None => problems.push(Problem::UnknownAfter {
                    service: s.name.clone(),
                    missing: a.clone(),
                }),
            }
        }
    }
    let n = services.len();
    let on_cycle = cycle_members(&deps, n);
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let ready = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        // When nothing is ready every service left waits on another one left,
        // so following those waits ends on a cycle: break it at its first
        // declared member. The fallback cannot be reached; it keeps the loop
        // finite whatever happens.
        let next = ready
            .or_else(|| on_cycle.iter().copied().find(|&i| !done[i]))
            .or_else(|| (0..n).find(|&i| !done[i]));
        let Some(next) = next else { break };
        done[next] = true;
        order.push(next);
    }
    if !on_cycle.is_empty() {
        problems.push(Problem::Cycle {
            services: on_cycle.iter().map(|&i| services[i].name.clone()).collect(),
        });
    }
    (order, problems)
}

/// Services that are on a cycle (they can reach themselves), in declaration
/// order.
fn cycle_members(deps: &[Vec<usize>], n: usize) -> Vec<usize> {
    (0..n)
        .filter(|&start| {
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = deps[start].clone();
            while let Some(i) = stack.pop() {
                if i == start {
                    return true;
                }
                if !seen[i] {
                    seen[i] = true;
                    stack.extend(&deps[i]);
                }
            }
            false
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_schema::system::RestartPolicy;

    fn svc(name: &str, after: &[&str]) -> Service {
        Service {
            name: name.to_owned(),
            exec: format!("/sbin/{name}"),
            args: vec![],
            env: Default::default(),
            after: after.iter().map(|a| (*a).to_owned()).collect(),
            oneshot: false,
            restart: RestartPolicy::default(),
            user: "root".to_owned(),
            uid: 0,
            gid: 0,
            groups: vec![],
            capabilities: vec![],
            runtime_dirs: vec![],
            devices: vec![],
            realtime_priority: None,
        }
    }

    fn names(services: &[Service], order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| services[i].name.clone()).collect()
    }

    #[test]
    fn declaration_order_without_after() {
        let s = vec![svc("a", &[]), svc("b", &[]), svc("c", &[])];
        let (o, p) = start_order(&s);
        assert_eq!(names(&s, &o), ["a", "b", "c"]);
        assert!(p.is_empty());
    }

    #[test]
    fn after_moves_a_service_behind_its_dependency_and_is_stable() {
        let s = vec![
            svc("dhcp", &["netcfg"]),
            svc("sshd", &[]),
            svc("netcfg", &[]),
            svc("bird", &["netcfg", "dhcp"]),
            svc("ntp", &[]),
        ];
        let (o, p) = start_order(&s);
        assert_eq!(names(&s, &o), ["sshd", "netcfg", "dhcp", "bird", "ntp"]);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn unknown_after_is_reported_and_ignored() {
        let s = vec![svc("a", &["ghost"]), svc("b", &[])];
        let (o, p) = start_order(&s);
        assert_eq!(names(&s, &o), ["a", "b"]);
        assert_eq!(
            p,
            [Problem::UnknownAfter {
                service: "a".into(),
                missing: "ghost".into()
            }]
        );
        assert!(p[0].to_string().contains("`ghost`"));
    }

    #[test]
    fn cycle_is_reported_and_started_in_declaration_order() {
        // c depends on the cycle a <-> b; d is independent; e after c.
        let s = vec![
            svc("e", &["c"]),
            svc("a", &["b"]),
            svc("b", &["a"]),
            svc("c", &["b"]),
            svc("d", &[]),
        ];
        let (o, p) = start_order(&s);
        // d is free and goes first; then the cycle is broken at its first
        // declared member (a), then b, then c, then e.
        assert_eq!(names(&s, &o), ["d", "a", "b", "c", "e"]);
        assert_eq!(
            p,
            [Problem::Cycle {
                services: vec!["a".into(), "b".into()]
            }]
        );
        let msg = p[0].to_string();
        assert!(msg.contains("`a`, `b`") && msg.contains("cycle"), "{msg}");
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let s = vec![svc("a", &["a"]), svc("b", &[])];
        let (o, p) = start_order(&s);
        assert_eq!(names(&s, &o), ["b", "a"]);
        assert_eq!(
            p,
            [Problem::Cycle {
                services: vec!["a".into()]
            }]
        );
    }

    #[test]
    fn every_service_appears_once_even_with_duplicates() {
        let s = vec![svc("a", &[]), svc("a", &[]), svc("b", &["a", "a"])];
        let (mut o, p) = start_order(&s);
        assert!(p.contains(&Problem::DuplicateName { name: "a".into() }));
        assert_eq!(o[..2], [0, 1]);
        o.sort_unstable();
        assert_eq!(o, [0, 1, 2]);
    }
}
