//! The metrics page checked by promtool, served over loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use wanflash_linequality::http::{self, Server};
use wanflash_linequality::render_metrics;

mod common;
use common::{extra, recorder};

#[test]
fn metrics_pass_promtool_check_metrics() {
    let page = render_metrics(&recorder(), &extra());
    let Some(promtool) = common::promtool() else {
        return;
    };
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{page}"
    );
    // And what it says is right.
    for line in [
        "node_bonding_slaves{master=\"bond0\"} 2",
        "node_bonding_active{master=\"bond0\"} 1",
        "wanflash_probes_sent_total{circuit=\"eth0\",path=\"t1\"} 999",
        "wanflash_probes_lost_total{circuit=\"eth0\",path=\"t1\"} 99",
        "wanflash_rtt_seconds_count{circuit=\"t1\",path=\"t1\"} 999",
        "wanflash_bond_link_failures_total{circuit=\"eth0\",path=\"t1\"} 3",
        "wanflash_outages_total{circuit=\"t3\",path=\"t3\"} 1",
        "node_network_receive_bytes_total{device=\"eth3\"} 99900",
        "wanflash_path_state{path=\"t3\",state=\"holding\"} 1",
        "wanflash_route_path{destination=\"203.0.113.128/25\",table=\"254\",path=\"t1\"} 1",
        // The 10 s bucket 10-20 s: probes 500 to 999, a tenth lost on eth0.
        "wanflash_loss_ratio{circuit=\"eth0\",path=\"t1\"} 0.1",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing `{line}` in\n{page}"
        );
    }
}

fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_are_served_over_loopback_and_nothing_else_is() {
    let rec = recorder();
    let page = render_metrics(&rec, &extra());
    let mut server = Server::new(http::listen("127.0.0.1:0".parse().unwrap()).unwrap());
    let addr = server.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let ok = get(addr, "GET /metrics HTTP/1.0\r\n\r\n");
        let missing = get(addr, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
        let post = get(addr, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
        let big = get(
            addr,
            &format!("GET /metrics HTTP/1.0\r\nX: {}\r\n\r\n", "a".repeat(5000)),
        );
        (ok, missing, post, big)
    });
    let started = std::time::Instant::now();
    let mut served = 0;
    while !client.is_finished() {
        assert!(
            started.elapsed().as_secs() < 30,
            "the client did not finish"
        );
        server.service(started.elapsed().as_millis() as u64, &mut || {
            served += 1;
            render_metrics(&rec, &extra())
        });
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let (ok, missing, post, big) = client.join().unwrap();
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(head.contains(&format!("Content-Length: {}", page.len())));
    assert_eq!(body, page);
    assert!(missing.starts_with("HTTP/1.0 404 "), "{missing}");
    assert!(post.starts_with("HTTP/1.0 405 "), "{post}");
    assert!(big.starts_with("HTTP/1.0 431 "), "{big}");
    assert_eq!(served, 1, "rendered for the one GET /metrics only");
    assert_eq!(server.connections(), 0);
}
