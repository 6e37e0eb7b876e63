//! Route sets: which path carries each destination, and moving them.

use super::*;

/// A destination carried by one or more paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSet {
    pub destination: Cidr,
    pub table: u32,
    /// Paths carrying it, best priority first.
    pub candidates: Vec<usize>,
    pub current: Option<usize>,
    /// All its paths are down (said once).
    pub stranded: bool,
}

impl Fsm {
    /// Where each route set should be, compared with where it is.
    pub(super) fn reroute(&mut self) -> (Vec<RouteMove>, Vec<Kept>) {
        let mut moves = Vec::new();
        let mut kept = Vec::new();
        let health: Vec<Health> = self.paths.iter().map(|p| p.health).collect();
        for (si, set) in self.sets.iter_mut().enumerate() {
            let desired = match self.forced.filter(|f| set.candidates.contains(f)) {
                Some(f) => Some(f),
                None => {
                    let best_up = set.candidates.iter().position(|&p| health[p] == Health::Up);
                    let undecided_before =
                        &set.candidates[..best_up.unwrap_or(set.candidates.len())];
                    if undecided_before
                        .iter()
                        .any(|&p| health[p] == Health::Unknown)
                    {
                        // A better path has not been heard from yet.
                        continue;
                    }
                    match best_up {
                        Some(i) => Some(set.candidates[i]),
                        None => set
                            .current
                            .filter(|&c| health[c] == Health::Holding)
                            .or_else(|| {
                                set.candidates
                                    .iter()
                                    .copied()
                                    .find(|&p| health[p] == Health::Holding)
                            }),
                    }
                }
            };
            match desired {
                Some(p) => {
                    set.stranded = false;
                    if set.current != Some(p) {
                        moves.push(RouteMove {
                            set: si,
                            from: set.current,
                            to: p,
                        });
                        set.current = Some(p);
                    }
                }
                None => {
                    if !set.stranded {
                        set.stranded = true;
                        kept.push(Kept {
                            set: si,
                            on: set.current,
                        });
                    }
                }
            }
        }
        (moves, kept)
    }
}
