//! `tracekit analyze` on the lab pairs recorded by testdata/lab/record_pairs.sh (truth in its
//! header) and testdata/lab/record_router_pair.sh: the verdicts, the proofs, the frames they
//! cite (checked with tshark), either order, a shifted clock, filters, batch, damage, corpus.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tracekit_testutil::tshark_fields;

use crate::{corpus, run, stderr, stdout, testdata, tracekit};

fn analyze_json(a: &Path, b: &Path, extra: &[&str]) -> (Value, std::process::Output) {
    let o = run(tracekit()
        .arg("analyze")
        .arg("--json")
        .args(extra)
        .arg(a)
        .arg(b));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("JSON output ({e}): {} {}", stdout(&o), stderr(&o)));
    (v, o)
}

fn pair(name: &str) -> (PathBuf, PathBuf) {
    (
        testdata(&format!("{name}-client.pcapng")),
        testdata(&format!("{name}-server.pcapng")),
    )
}

/// The connections from client ports 53695 and 53700 of a lab pair whose box passes TCP
/// through (transparent, both work, the client closes), checked for that and for the kinds.
fn passed_through(client: &Path, server: &Path, kinds: &[&str]) -> Vec<Value> {
    let (v, o) = analyze_json(client, server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    [53695, 53700]
        .into_iter()
        .map(|port| {
            let c = conn(&v, port).clone();
            assert_eq!(c["middlebox"]["kind"], serde_json::json!(kinds));
            assert_eq!(c["middlebox"]["transparent"], true);
            assert_eq!(c["closed_by"], "client");
            assert_eq!(c["failed"], false);
            let verdict = c["verdict"].as_str().unwrap();
            assert!(verdict.contains("without terminating TCP"), "{verdict}");
            c
        })
        .collect()
}

/// The JSON analysis of a lab pair (which must succeed), with the pair's files.
fn analyzed(name: &str) -> (Value, PathBuf, PathBuf) {
    let (client, server) = pair(name);
    let (report, out) = analyze_json(&client, &server, &[]);
    assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    (report, client, server)
}

fn conn(v: &Value, client_port: u64) -> &Value {
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_port"] == client_port)
        .unwrap_or_else(|| panic!("no connection from port {client_port}: {v:#}"))
}

fn signals(c: &Value) -> Vec<&str> {
    c["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["signal"].as_str().unwrap())
        .collect()
}

fn evidence<'a>(c: &'a Value, signal: &str) -> &'a Value {
    c["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["signal"] == signal)
        .unwrap_or_else(|| panic!("no {signal} in {:#}", c["evidence"]))
}

fn frames(e: &Value, side: &str) -> Vec<u64> {
    e[side]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_u64().unwrap())
        .collect()
}

/// One field of one frame, as tshark reads it.
fn tshark_field(path: &Path, frame: u64, field: &str) -> String {
    let lines = tshark_fields(path, &["frame.number", field]);
    lines
        .iter()
        .find_map(|l| {
            let (n, v) = l.split_once('\t')?;
            (n == frame.to_string()).then(|| v.to_string())
        })
        .unwrap_or_default()
}

/// A flag field as tshark prints it (`1` or `True`, by version).
fn is_set(v: &str) -> bool {
    v == "1" || v == "True"
}

#[test]
fn the_demo_firewall_terminated_tcp_and_closed_both_sides_after_the_server_hello() {
    let (client, server) = pair("firewall");
    let (v, o) = analyze_json(&client, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!v["swapped"].as_bool().unwrap());
    // The two failed connections on port 443 come first, the one that worked last.
    let ports: Vec<u64> = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [53695, 53712, 53700]);
    for port in [53695, 53712] {
        let c = conn(&v, port);
        assert_eq!(c["failed"], true);
        assert_eq!(c["matched_by"], "tuple");
        assert_eq!(c["middlebox"]["kind"], serde_json::json!(["tcp-proxy"]));
        assert_eq!(c["middlebox"]["transparent"], true);
        assert_eq!(c["middlebox"]["mac"], "00:1c:7f:3a:00:02");
        assert!(
            c["middlebox"]["vendor"]
                .as_str()
                .unwrap()
                .contains("Check Point"),
            "{:#}",
            c["middlebox"]
        );
        assert_eq!(c["hops"]["client_side"], 2);
        assert_eq!(c["hops"]["server_side"], 0);
        assert_eq!(c["closed_by"], "middlebox");
        assert_eq!(c["confidence"], "high");
        let s = signals(c);
        for want in [
            "isn-rewritten",
            "ipid-rewritten",
            "ecn-stripped",
            "wscale-rewritten",
            "ttl-origin-mismatch",
            "split-handshake",
            "fin-faster-than-rtt",
            "dropped-in-path",
            "injected-in-path",
            "tso-oversize",
        ] {
            assert!(s.contains(&want), "{want} missing for {port}: {s:?}");
        }
        for absent in ["addresses-translated", "ports-translated", "mss-rewritten"] {
            assert!(!s.contains(&absent), "{absent} for {port}: {s:?}");
        }
        assert!(
            !evidence(c, "tso-oversize")["middlebox_evidence"]
                .as_bool()
                .unwrap()
        );
        assert!(
            c["verdict"]
                .as_str()
                .unwrap()
                .contains("after the server's Server Hello")
        );
        // TLS: the Client Hello reached the server, the Server Hello never reached the client.
        assert_eq!(c["tls"]["client_random_same"], true);
        assert_eq!(c["tls"]["server_hello"]["a"].as_array().unwrap().len(), 0);
        assert_eq!(c["tls"]["server_hello"]["b"].as_array().unwrap().len(), 1);
        // RTT on each side: the long way to the client, the firewall next to the server.
        let (ra, rb) = (
            c["rtt_ms"]["a"].as_f64().unwrap(),
            c["rtt_ms"]["b"].as_f64().unwrap(),
        );
        assert!(ra > 3.0 && rb < 1.0, "{ra} {rb}");
    }
    // The frames the proof cites are what tshark says they are: at the server side, the
    // Server Hello and then a FIN in the client's name with TTL 255.
    let c = conn(&v, 53695);
    let fin = frames(evidence(c, "fin-faster-than-rtt"), "frames_b");
    assert_eq!(fin.len(), 2);
    assert_eq!(tshark_field(&server, fin[0], "tls.handshake.type"), "2");
    assert!(is_set(&tshark_field(&server, fin[1], "tcp.flags.fin")));
    assert_eq!(tshark_field(&server, fin[1], "ip.src"), "192.0.2.10");
    assert_eq!(tshark_field(&server, fin[1], "ip.ttl"), "255");
    // The client's SYN at the client side asks for ECN; at the server side it does not.
    let ecn = evidence(c, "ecn-stripped");
    let fa = frames(ecn, "frames_a")[0];
    let fb = frames(ecn, "frames_b")[0];
    assert!(is_set(&tshark_field(&client, fa, "tcp.flags.ece")));
    assert!(!is_set(&tshark_field(&server, fb, "tcp.flags.ece")));
    // The connection that worked was proxied too, and closed by the client.
    let ok = conn(&v, 53700);
    assert_eq!(ok["failed"], false);
    assert_eq!(ok["middlebox"]["kind"], serde_json::json!(["tcp-proxy"]));
    assert_eq!(ok["closed_by"], "client");
    assert!(!signals(ok).contains(&"fin-faster-than-rtt"));
    // The clock offset is found (true offset 0), with an interval.
    let clock = &v["clock"];
    let (lo, hi) = (
        clock["lo_ns"].as_i64().unwrap(),
        clock["hi_ns"].as_i64().unwrap(),
    );
    assert!(lo <= 0 && 0 <= hi, "{clock:#}");
}

#[test]
fn the_text_report_leads_with_the_verdict_and_gives_filters() {
    let (client, server) = pair("firewall");
    let o = run(tracekit().arg("analyze").arg(&client).arg(&server));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let first = text.find("── 1.").unwrap();
    let verdict = text[first..].lines().nth(1).unwrap();
    assert!(
        verdict.starts_with("A Check Point") && verdict.contains("terminated TCP"),
        "{verdict}"
    );
    assert!(text.contains("frame.number in {18 20}"), "{text}");
    assert!(text.contains("SYN TTL (initial, hops)"));
    assert!(text.contains("Caveats:"));
}

#[test]
fn timings_name_every_step_in_order_and_leave_the_report_as_it_is() {
    let (client, server) = pair("firewall");
    let plain = run(tracekit().arg("analyze").arg(&client).arg(&server));
    let timed = run(tracekit()
        .args(["analyze", "--timings"])
        .arg(&client)
        .arg(&server));
    assert_eq!(timed.status.code(), Some(0), "{}", stderr(&timed));
    assert_eq!(plain.stdout, timed.stdout);
    assert!(!stderr(&plain).contains(" s  "), "{}", stderr(&plain));
    let lines: Vec<(f64, String)> = stderr(&timed)
        .lines()
        .filter_map(|l| {
            let (at, step) = l
                .strip_prefix("tracekit analyze:")?
                .trim()
                .split_once(" s  ")?;
            Some((at.trim().parse().ok()?, step.to_string()))
        })
        .collect();
    let step = |what: &str| {
        lines
            .iter()
            .position(|(_, s)| s.starts_with(what))
            .unwrap_or_else(|| panic!("no step {what:?} in {lines:?}"))
    };
    let estimate = step("clock estimate done (it took ");
    let (read_a, read_b) = (
        step("firewall-client.pcapng read"),
        step("firewall-server.pcapng read"),
    );
    let (compared, written) = (step("3 connection pairs compared"), step("report written"));
    assert_eq!(lines.len(), 5, "{lines:?}");
    // The estimate may end before or after the reading; the comparison waits for both.
    assert!(estimate < compared && read_a < compared && read_b < compared);
    assert_eq!(written, 4);
    assert!(lines.windows(2).all(|w| w[0].0 <= w[1].0), "{lines:?}");
}

#[test]
fn either_order_gives_the_same_answer() {
    let (client, server) = pair("firewall");
    let (v1, _) = analyze_json(&client, &server, &[]);
    let (v2, o) = analyze_json(&server, &client, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(v2["swapped"].as_bool().unwrap());
    assert_eq!(v1["traces"], v2["traces"]);
    assert_eq!(v1["connections"], v2["connections"]);
    let (o1, o2) = (
        v1["clock"]["offset_ns"].as_i64().unwrap(),
        v2["clock"]["offset_ns"].as_i64().unwrap(),
    );
    assert!((o1 - o2).abs() < 1_000, "{o1} {o2}");
}

#[test]
fn a_shifted_server_clock_is_recovered_and_the_verdict_stands() {
    let (client, server) = pair("firewall");
    let dir = tempfile::tempdir().unwrap();
    let shifted = dir.path().join("server-shifted.pcapng");
    // editcap (Wireshark) as the outside reference for the shift: +2.5 s.
    let o = run(std::process::Command::new("editcap")
        .args(["-t", "2.5"])
        .arg(&server)
        .arg(&shifted));
    assert!(o.status.success(), "{}", stderr(&o));
    let (v, o) = analyze_json(&client, &shifted, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let clock = &v["clock"];
    let (lo, hi) = (
        clock["lo_ns"].as_i64().unwrap(),
        clock["hi_ns"].as_i64().unwrap(),
    );
    assert!(lo <= -2_500_000_000 && -2_500_000_000 <= hi, "{clock:#}");
    let c = conn(&v, 53695);
    assert_eq!(c["closed_by"], "middlebox");
    assert!(signals(c).contains(&"fin-faster-than-rtt"));
    assert!(signals(c).contains(&"split-handshake"));
}

#[test]
fn a_nat_is_matched_by_tls_random_and_told_apart_from_a_proxy() {
    let (client, server) = pair("nat");
    let (v, o) = analyze_json(&client, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for port in [53695, 53700] {
        let c = conn(&v, port);
        assert_eq!(c["matched_by"], "tls-random");
        assert_eq!(c["middlebox"]["kind"], serde_json::json!(["nat"]));
        assert_eq!(c["middlebox"]["transparent"], false);
        assert_eq!(c["closed_by"], "client");
        assert_eq!(c["failed"], false);
        let s = signals(c);
        assert!(s.contains(&"addresses-translated") && s.contains(&"ports-translated"));
        for absent in [
            "isn-rewritten",
            "ipid-rewritten",
            "ttl-origin-mismatch",
            "split-handshake",
        ] {
            assert!(!s.contains(&absent), "{absent}: {s:?}");
        }
        assert_eq!(
            c["sides"]["b"]["client"]
                .as_str()
                .unwrap()
                .split(':')
                .next(),
            Some("198.51.100.1")
        );
    }
}

#[test]
fn an_mss_clamp_and_ecn_bleaching_router() {
    let (client, server) = pair("clamp");
    let (v, o) = analyze_json(&client, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = conn(&v, 53695);
    assert_eq!(
        c["middlebox"]["kind"],
        serde_json::json!(["mss-clamp", "ecn-bleach"])
    );
    assert_eq!(c["middlebox"]["transparent"], true);
    assert_eq!(c["closed_by"], "client");
    assert_eq!(c["hops"]["path"], 3);
    assert_eq!(c["sides"]["a"]["syn"]["mss"], 1460);
    assert_eq!(c["sides"]["b"]["syn"]["mss"], 1200);
    let mss = evidence(c, "mss-rewritten");
    assert_eq!(
        tshark_field(&server, frames(mss, "frames_b")[0], "tcp.options.mss_val"),
        "1200"
    );
}

#[test]
fn a_router_that_strips_tcp_options_is_an_option_stripper_and_nothing_else() {
    // iptables TCPOPTSTRIP on the router removes SACK-permitted and timestamps from every
    // segment: the server never sees them offered, so it offers neither.
    let (client, server) = pair("strip");
    for c in &passed_through(&client, &server, &["option-stripper"]) {
        assert_eq!(c["matched_by"], "tuple");
        assert_eq!(c["hops"]["path"], 3);
        let found = signals(c);
        for absent in [
            "isn-rewritten",
            "ipid-rewritten",
            "mss-rewritten",
            "wscale-rewritten",
            "split-handshake",
            "addresses-translated",
        ] {
            assert!(!found.contains(&absent), "{absent}: {found:?}");
        }
        let (near, far) = (&c["sides"]["a"]["syn"], &c["sides"]["b"]["syn"]);
        assert_eq!(
            (&near["sack_permitted"], &near["timestamps"]),
            (&true.into(), &true.into())
        );
        assert_eq!(
            (&far["sack_permitted"], &far["timestamps"]),
            (&false.into(), &false.into())
        );
        let opts = evidence(c, "options-rewritten");
        assert!(
            opts["detail"].as_str().unwrap().contains("sok, ts removed"),
            "{opts}"
        );
        // What the report cites is what tshark sees in those frames.
        let (fa, fb) = (frames(opts, "frames_a")[0], frames(opts, "frames_b")[0]);
        assert_eq!(tshark_field(&client, fa, "tcp.option_kind"), "2,4,8,1,3");
        assert_eq!(
            tshark_field(&server, fb, "tcp.option_kind"),
            "2,1,1,1,1,1,1,1,1,1,1,1,1,1,3"
        );
    }
}

/// A server-side capture that lost the client's third handshake packet takes the client's
/// next packet for it, and its handshake looks slow: that is capture loss, not a proxy's own
/// handshake, and must not turn the option stripper into one.
#[test]
fn a_third_handshake_packet_lost_at_one_point_is_not_taken_for_a_split_handshake() {
    let (client, server) = pair("strip");
    let (v, _) = analyze_json(&client, &server, &[]);
    let third = conn(&v, 53695)["sides"]["b"]["ack_frame"].as_u64().unwrap();
    // tshark as the outside reference: the frame is the client's bare ACK of the handshake.
    assert_eq!(
        tshark_field(&server, third, "tcp.flags.str").trim(),
        "·······A····"
    );
    assert_eq!(tshark_field(&server, third, "tcp.len"), "0");
    let dir = tempfile::tempdir().unwrap();
    let lossy = without(&server, third, dir.path());
    let (v, o) = analyze_json(&client, &lossy, &["--port", "443"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = conn(&v, 53695);
    assert_eq!(
        c["middlebox"]["kind"],
        serde_json::json!(["option-stripper"])
    );
    let found = signals(c);
    for absent in ["split-handshake", "fin-faster-than-rtt"] {
        assert!(!found.contains(&absent), "{absent}: {found:?}");
    }
    let later = c["sides"]["b"]["ack_frame"].as_u64().unwrap();
    assert_ne!(tshark_field(&lossy, later, "tcp.len"), "0");
    let caveat = format!(
        "server-side capture has no packet like the client's third handshake packet at the other point (its frame {later} is a later one)"
    );
    assert!(
        c["caveats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().contains(&caveat)),
        "{:#}",
        c["caveats"]
    );
}

/// `path` without frame `frame`, written by editcap into `dir`.
fn without(path: &Path, frame: u64, dir: &Path) -> PathBuf {
    let name = format!(
        "{}-without-{frame}.pcapng",
        path.file_stem().unwrap().to_string_lossy()
    );
    without_frames(path, &[frame], dir, &name)
}

/// The reset pair without the one packet whose loss leaves nothing of the close: the RST the
/// router injects exists at the client side only. The connection is then closed by nobody,
/// but the verdict still names the Client Hello that never reached the server side. Returns
/// the RST's frame.
fn without_the_injected_rst(dir: &Path) -> u64 {
    let (client, server) = pair("reset");
    let (truth, _) = analyze_json(&client, &server, &[]);
    let rst = evidence(conn(&truth, 53695), "injected-in-path")["frames_a"][0]
        .as_u64()
        .unwrap();
    assert!(is_set(&tshark_field(&client, rst, "tcp.flags.reset")));
    let (lossy, o) = analyze_json(&without(&client, rst, dir), &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let found = conn(&lossy, 53695);
    assert_eq!(found["closed_by"], "none");
    let verdict = found["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("Client Hello") && verdict.contains("never reached the other point"),
        "{verdict}"
    );
    rst
}

/// Capture loss is not a middlebox: one packet missing from either capture of every lab pair
/// (one at a time, every packet) may hide evidence, but never makes a kind of middlebox that is
/// not there, nor moves the close: a FIN one capture lacks is read from the packets that show
/// it passed. The one packet whose loss leaves nothing to go on is the injected RST itself
/// (it exists at the client side only); its case is checked for what it still shows.
#[test]
fn one_packet_lost_by_either_capture_never_invents_a_middlebox_or_moves_its_close() {
    let dir = tempfile::tempdir().unwrap();
    let verdicts = |a: &Path, b: &Path| -> Vec<(u64, Vec<String>, String)> {
        let (v, o) = analyze_json(a, b, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let kinds = c["middlebox"]["kind"].as_array().unwrap();
                (
                    c["client_port"].as_u64().unwrap(),
                    kinds
                        .iter()
                        .map(|k| k.as_str().unwrap().to_string())
                        .collect(),
                    c["closed_by"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let injected_rst = without_the_injected_rst(dir.path());
    let mut cases = Vec::new();
    for name in [
        "router",
        "nat",
        "clamp",
        "strip",
        "scramble",
        "firewall",
        "intercept",
        "reset",
    ] {
        let (client, server) = pair(name);
        let truth = verdicts(&client, &server);
        for (side, path) in [("client", &client), ("server", &server)] {
            let frames = tshark_fields(path, &["frame.number"]).len() as u64;
            assert!(frames > 30, "{name} {side}: {frames}");
            for frame in 1..=frames {
                if name == "reset" && side == "client" && frame == injected_rst {
                    continue;
                }
                cases.push((
                    name,
                    side,
                    frame,
                    client.clone(),
                    server.clone(),
                    truth.clone(),
                ));
            }
        }
    }
    // Without the server side's SYN, the SYN's options cannot be compared: the verdict must
    // not say that nothing changed.
    let (client, server) = pair("strip");
    let (v, _) = analyze_json(&client, &server, &[]);
    let syn = conn(&v, 53695)["sides"]["b"]["syn"]["frame"]
        .as_u64()
        .unwrap();
    let (v, _) = analyze_json(&client, &without(&server, syn, dir.path()), &[]);
    let verdict = conn(&v, 53695)["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("its handshake was not captured whole at both"),
        "{verdict}"
    );
    // Two workers: each case is an editcap and an analyze of a few dozen packets.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some((name, side, frame, client, server, truth)) =
                    cases.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    let (a, b) = if *side == "client" {
                        (without(client, *frame, dir.path()), server.clone())
                    } else {
                        (client.clone(), without(server, *frame, dir.path()))
                    };
                    for (port, kinds, closed_by) in verdicts(&a, &b) {
                        let Some((_, true_kinds, true_close)) =
                            truth.iter().find(|t| t.0 == port)
                        else {
                            continue;
                        };
                        let made_up: Vec<&String> = kinds
                            .iter()
                            .filter(|k| *k != "none" && !true_kinds.contains(k))
                            .collect();
                        assert!(
                            made_up.is_empty(),
                            "{name}, {side} side without frame {frame}: port {port} {kinds:?}, truth {true_kinds:?}"
                        );
                        assert_eq!(
                            &closed_by, true_close,
                            "{name}, {side} side without frame {frame}: port {port}"
                        );
                    }
                }
            });
        }
    });
}

/// The frame of the first FIN sent from port `sender_port` in `path`.
fn first_fin(path: &Path, sender_port: u64) -> u64 {
    tshark_fields(path, &["frame.number", "tcp.srcport", "tcp.flags.fin"])
        .iter()
        .find_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1] == sender_port.to_string() && is_set(f[2])).then(|| f[0].parse().unwrap())
        })
        .unwrap()
}

/// A FIN a capture lacks is read from the packets there that show it passed: the client's own
/// FIN, passed on by the firewall, still makes the client the closer; the interceptor's FIN to
/// the client still makes it the middlebox; and the client's FIN lost by both captures still
/// comes before the server's FIN that acknowledges it.
#[test]
fn a_fin_a_capture_lacks_is_read_from_what_shows_it_passed() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair("firewall");
    let lossy = without(&client, first_fin(&client, 53700), dir.path());
    let (v, o) = analyze_json(&lossy, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = conn(&v, 53700);
    assert_eq!(c["closed_by"], "client");
    let proof = c["close_proof"].as_str().unwrap();
    let relay = first_fin(&server, 53700);
    assert!(
        proof.contains("the client-side capture lacks it")
            && proof.contains(&format!(
                "(frame {relay}, TTL 255) is the middlebox passing it on"
            )),
        "{proof}"
    );
    assert!(
        c["caveats"].as_array().unwrap().iter().any(|x| x
            .as_str()
            .unwrap()
            .starts_with("the client's FIN is missing from the client-side capture")),
        "{:#}",
        c["caveats"]
    );

    let (client, server) = pair("intercept");
    let lossy = without(&client, first_fin(&client, 443), dir.path());
    let (v, o) = analyze_json(&lossy, &server, &["--port", "443"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = conn(&v, 53695);
    assert_eq!(c["closed_by"], "middlebox");
    let proof = c["close_proof"].as_str().unwrap();
    assert!(
        proof.contains("FIN in the server's name (not captured at the client side, but frame")
            && proof.contains("TTL 253) that the server did not send"),
        "{proof}"
    );

    let (client, server) = pair("strip");
    let (v, o) = analyze_json(
        &without(&client, first_fin(&client, 53695), dir.path()),
        &without(&server, first_fin(&server, 53695), dir.path()),
        &["--port", "443"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = conn(&v, 53695);
    assert_eq!(c["closed_by"], "client");
    let proof = c["close_proof"].as_str().unwrap();
    assert!(
        proof.starts_with("the client sent the first FIN (not captured at the"),
        "{proof}"
    );
}

#[test]
fn a_sequence_number_rewriter_is_told_from_a_proxy_by_segments_forwarded_one_to_one() {
    // New sequence numbers and new IP IDs, as from a proxy, but every bare segment reappears
    // with the same numbers once the offset is removed, in causal order.
    let (client, server) = pair("scramble");
    for c in &passed_through(&client, &server, &["seq-randomizer", "option-stripper"]) {
        let s = signals(c);
        for present in ["isn-rewritten", "ipid-rewritten", "options-rewritten"] {
            assert!(s.contains(&present), "{present}: {s:?}");
        }
        for absent in ["split-handshake", "ttl-origin-mismatch", "dropped-in-path"] {
            assert!(!s.contains(&absent), "{absent}: {s:?}");
        }
        // The lab's box adds 0x5EC0FF5E to the client's numbers and leaves the server's.
        let isn = evidence(c, "isn-rewritten");
        let detail = isn["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("difference {}", 0x5EC0_FF5E_u32)),
            "{detail}"
        );
        assert!(
            detail.contains("forwarded with their numbers rewritten"),
            "{detail}"
        );
        assert!(!detail.contains("server's initial"), "{detail}");
        let (fa, fb) = (frames(isn, "frames_a"), frames(isn, "frames_b"));
        assert!(fa.len() >= 5 && fa.len() == fb.len(), "{fa:?} {fb:?}");
        for (a, b) in fa.iter().zip(&fb).skip(2) {
            let seq_a: u32 = tshark_field(&client, *a, "tcp.seq_raw").parse().unwrap();
            let seq_b: u32 = tshark_field(&server, *b, "tcp.seq_raw").parse().unwrap();
            let ack = |p: &Path, f| tshark_field(p, f, "tcp.ack_raw");
            if tshark_field(&client, *a, "ip.src") == "192.0.2.10" {
                assert_eq!(seq_b.wrapping_sub(seq_a), 0x5EC0_FF5E);
                assert_eq!(ack(&client, *a), ack(&server, *b));
            } else {
                assert_eq!(seq_a, seq_b);
            }
        }
        let opts = evidence(c, "options-rewritten");
        assert!(
            opts["detail"]
                .as_str()
                .unwrap()
                .contains("ts removed, overwritten with NOPs"),
            "{opts}"
        );
    }
}

/// `path` without `frames`, written by editcap into `dir` as `name`.
fn without_frames(path: &Path, frames: &[u64], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let o = run(std::process::Command::new("editcap")
        .arg(path)
        .arg(&out)
        .args(frames.iter().map(u64::to_string)));
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

/// The server side without the server's SYN/ACK and the client's third handshake packet: the
/// server's ISN there is read from the client's Client Hello, whose acknowledgement is where
/// the server's first packet starts, so the rewriter's bare segments are still compared one by
/// one and it is not taken for a proxy. Without the Client Hello as well, the client's next
/// packet acknowledges server data whose packets are there: the server's ISN stays unknown,
/// and the new IP IDs alone do not make a proxy of the rewriter.
#[test]
fn a_server_isn_whose_handshake_packets_were_lost_is_read_from_the_next_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair("scramble");
    let (truth, _) = analyze_json(&client, &server, &[]);
    let b = &conn(&truth, 53695)["sides"]["b"];
    let syn_ack = b["syn_ack"]["frame"].as_u64().unwrap();
    let third = b["ack_frame"].as_u64().unwrap();
    let hello = conn(&truth, 53695)["tls"]["client_hello"]["b"][0]
        .as_u64()
        .unwrap();
    assert!(is_set(&tshark_field(&server, syn_ack, "tcp.flags.syn")));
    assert_eq!(tshark_field(&server, third, "tcp.len"), "0");
    assert_eq!(hello, third + 1);
    for (lost, read) in [
        (vec![syn_ack, third], true),
        (vec![syn_ack, third, hello], false),
    ] {
        let lossy = without_frames(
            &server,
            &lost,
            dir.path(),
            &format!("{}.pcapng", lost.len()),
        );
        let (v, o) = analyze_json(&client, &lossy, &["--port", "443"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let c = conn(&v, 53695);
        assert_eq!(
            c["middlebox"]["kind"],
            serde_json::json!(["seq-randomizer", "option-stripper"]),
            "without {lost:?}"
        );
        let isn = evidence(c, "isn-rewritten")["detail"].as_str().unwrap();
        assert_eq!(
            isn.contains("bare segments reappear at the server side"),
            read,
            "without {lost:?}: {isn}"
        );
    }
}

/// The client side without the last three packets of a connection (the client's FIN, the
/// server's FIN, the client's last ACK): the client's FIN at the server side, which left the
/// client with its TTL and which the client's last ACK there steps past, is the client's own,
/// not injected, and the client closed.
#[test]
fn a_fin_the_sender_steps_past_is_its_own_though_its_capture_lost_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair("strip");
    let fin = first_fin(&client, 53700);
    let rest: Vec<u64> = tshark_fields(&client, &["frame.number", "tcp.port"])
        .iter()
        .filter_map(|l| {
            let (n, ports) = l.split_once('\t')?;
            let n: u64 = n.parse().ok()?;
            (n >= fin && ports.split(',').any(|p| p == "53700")).then_some(n)
        })
        .collect();
    assert_eq!(rest.len(), 3, "{rest:?}");
    let lossy = without_frames(&client, &rest, dir.path(), "client-without-end.pcapng");
    let (v, o) = analyze_json(&lossy, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = conn(&v, 53700);
    assert_eq!(c["closed_by"], "client");
    assert_eq!(
        c["middlebox"]["kind"],
        serde_json::json!(["option-stripper"])
    );
    assert!(
        !signals(c).contains(&"injected-in-path"),
        "{:?}",
        signals(c)
    );
}

#[test]
fn a_tls_interceptor_is_told_from_a_plain_tcp_proxy_by_the_random_values() {
    let (client, server) = pair("intercept");
    let (v, o) = analyze_json(&client, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for port in [53695, 53700] {
        let c = conn(&v, port);
        assert_eq!(c["matched_by"], "tuple");
        assert_eq!(
            c["middlebox"]["kind"],
            serde_json::json!(["tcp-proxy", "tls-interceptor"])
        );
        assert_eq!(c["tls"]["client_random_same"], false);
        assert_eq!(c["tls"]["server_random_same"], false);
        assert_eq!(c["failed"], false);
        // The two byte streams differ, so no packet is called dropped or injected.
        let s = signals(c);
        assert!(
            !s.contains(&"dropped-in-path") && !s.contains(&"injected-in-path"),
            "{s:?}"
        );
        assert!(s.contains(&"split-handshake") && s.contains(&"ttl-origin-mismatch"));
        // The proxy closed the client's side first (relaying the server's TLS close).
        assert_eq!(c["closed_by"], "middlebox");
    }
}

#[test]
fn an_injected_reset_is_found_and_blamed_on_the_middlebox() {
    let (client, server) = pair("reset");
    let (v, o) = analyze_json(&client, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = conn(&v, 53695);
    assert_eq!(c["failed"], true);
    assert_eq!(c["middlebox"]["kind"], serde_json::json!(["rst-injector"]));
    assert_eq!(c["closed_by"], "middlebox");
    assert_eq!(c["hops"]["client_side"], 2);
    let injected = evidence(c, "injected-in-path");
    let rst = frames(injected, "frames_a")[0];
    assert!(is_set(&tshark_field(&client, rst, "tcp.flags.reset")));
    assert_eq!(tshark_field(&client, rst, "ip.ttl"), "253");
    let dropped = evidence(c, "dropped-in-path");
    assert_eq!(
        tshark_field(
            &client,
            frames(dropped, "frames_a")[0],
            "tls.handshake.type"
        ),
        "1"
    );
    // The other connection went through untouched.
    let ok = conn(&v, 53700);
    assert_eq!(ok["middlebox"]["kind"], serde_json::json!(["none"]));
    assert_eq!(ok["closed_by"], "client");
}

#[test]
fn a_plain_router_changes_nothing() {
    let (client, server) = pair("router");
    let (v, o) = analyze_json(&client, &server, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = &v["connections"][0];
    assert_eq!(c["middlebox"]["kind"], serde_json::json!(["none"]));
    assert_eq!(c["closed_by"], "client");
    assert!(
        signals(c).iter().all(|s| *s == "tso-oversize"),
        "{:?}",
        signals(c)
    );
    assert_eq!(c["hops"]["path"], 1);
}

#[test]
fn port_and_conn_filters_pick_connections() {
    let (client, server) = pair("firewall");
    let (v, _) = analyze_json(&client, &server, &["--port", "4433"]);
    assert_eq!(v["connections"].as_array().unwrap().len(), 1);
    assert_eq!(v["connections"][0]["client_port"], 53700);
    let (v, _) = analyze_json(&client, &server, &["--conn", "192.0.2.10:53712"]);
    assert_eq!(v["connections"].as_array().unwrap().len(), 1);
    assert_eq!(v["connections"][0]["client_port"], 53712);
    let (v, o) = analyze_json(&client, &server, &["--conn", ":9"]);
    assert_eq!(v["connections"].as_array().unwrap().len(), 0);
    assert_eq!(o.status.code(), Some(1));
    let o = run(tracekit()
        .args(["analyze", "--conn", "nonsense"])
        .arg(&client)
        .arg(&server));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--conn nonsense"), "{}", stderr(&o));
}

/// Writes a classic pcap of `n` connections from 192.0.2.10 (ports 1000..) to 198.51.100.20:80:
/// a SYN each, and for every fourth a SYN/ACK and 5 bytes of data from the server (it worked).
fn scan_like(path: &Path, n: u16) {
    let mut file = vec![];
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        file.extend_from_slice(&v.to_le_bytes());
    }
    let mut t = 0u32;
    let mut packet = |file: &mut Vec<u8>, port: u16, back: bool, flags: u8, payload: &[u8]| {
        let (mut src, mut dst, mut sport, mut dport) =
            ([192, 0, 2, 10], [198, 51, 100, 20], port, 80);
        if back {
            (src, dst, sport, dport) = (dst, src, dport, sport);
        }
        let mut p = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(40 + payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        let seq = u32::from(port) << 16 | u32::from(back);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        t += 1;
        for v in [1_700_000_000, t * 1000, p.len() as u32, p.len() as u32] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(&p);
    };
    for k in 0..n {
        let port = 1000 + k;
        packet(&mut file, port, false, 0x02, &[]);
        if k % 4 == 0 {
            packet(&mut file, port, true, 0x12, &[]);
            packet(&mut file, port, true, 0x18, b"hello");
        }
    }
    std::fs::write(path, file).unwrap();
}

#[test]
fn a_report_of_many_connections_counts_them_all_and_shows_the_first_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"));
    scan_like(&a, 60);
    scan_like(&b, 60);
    let text = |extra: &[&str]| {
        let o = run(tracekit().arg("analyze").args(extra).arg(&a).arg(&b));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let short = text(&[]);
    assert!(
        short.contains("connections in both traces: 60 (45 failed)"),
        "{short}"
    );
    let tally: Vec<Vec<&str>> = short
        .lines()
        .skip_while(|l| *l != "By verdict:")
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        tally,
        [
            ["45", "failed", "none", "none"],
            ["15", "ok", "none", "none"]
        ],
        "{short}"
    );
    // The first 20 failed ones in full, exactly as --all shows them; a count of the others.
    let all = text(&["--all"]);
    let sections = |t: &str| -> Vec<String> {
        t.split("\n── ")
            .skip(1)
            .map(|s| s.split("\n… and").next().unwrap().to_string())
            .collect()
    };
    let (shown, every) = (sections(&short), sections(&all));
    assert_eq!(shown.len(), 20);
    assert_eq!(every.len(), 60);
    assert_eq!(shown, every[..20]);
    assert!(short.contains("… and 25 more failed or odd connections not shown in full"));
    assert!(!all.contains("… and"));
    // The page likewise, and --conn still picks one connection out of them.
    let page = dir.path().join("page.html");
    let _ = text(&["--html", page.to_str().unwrap()]);
    let page = std::fs::read_to_string(page).unwrap();
    assert!(page.contains("<h2>By verdict</h2>"));
    assert_eq!(page.matches("<section id=\"conn").count(), 20);
    let one = text(&["--conn", ":1004"]);
    assert!(
        one.contains("connections in both traces: 1 (0 failed)"),
        "{one}"
    );
    assert!(
        one.contains("── 1. 192.0.2.10:1004 → 198.51.100.20:80 (ok) ──"),
        "{one}"
    );
}

/// Copies lab pairs into two directories (client side as `a/NAME_A`, server side as
/// `b/NAME_B`), runs `--batch` on them and returns the summary rows and the output directory.
fn batch(files: &[(&str, String, String)]) -> (Vec<Value>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("out"),
    );
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for (scenario, name_a, name_b) in files {
        let (client, server) = pair(scenario);
        std::fs::copy(client, a.join(name_a)).unwrap();
        std::fs::copy(server, b.join(name_b)).unwrap();
    }
    let o = run(tracekit()
        .args(["analyze", "--batch"])
        .arg(&a)
        .arg(&b)
        .arg("-o")
        .arg(&out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), files.len() + 1, "{csv}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let rows = summary["pairs"].as_array().unwrap().clone();
    assert_eq!(rows.len(), files.len());
    for r in &rows {
        let report = Path::new(r["report"].as_str().unwrap());
        assert!(report.exists());
        assert!(report.with_extension("html").exists(), "one page per pair");
    }
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(
        index.matches("<a href=").count(),
        files.len(),
        "the index links every pair"
    );
    (rows, dir)
}

fn row<'a>(rows: &'a [Value], a_name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["a"].as_str().unwrap().ends_with(a_name))
        .unwrap_or_else(|| panic!("no row for {a_name}: {rows:#?}"))
}

#[test]
fn batch_pairs_directories_by_name_and_writes_a_summary() {
    let same = |s: &'static str| (s, format!("{s}.pcapng"), format!("{s}.pcapng"));
    let (rows, _dir) = batch(&[same("firewall"), same("nat"), same("reset")]);
    assert_eq!(row(&rows, "firewall.pcapng")["middlebox"], "tcp-proxy");
    assert_eq!(row(&rows, "nat.pcapng")["middlebox"], "nat");
    assert_eq!(row(&rows, "reset.pcapng")["middlebox"], "rst-injector");
    assert!(rows.iter().all(|r| r["paired_by"] == "content"));
}

#[test]
fn batch_pairs_files_with_other_names_by_shared_connections() {
    // Other names, other order on the server side.
    let files: Vec<(&str, String, String)> = ["firewall", "clamp", "reset"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                *s,
                format!("host-a-{i}.pcapng"),
                format!("{}-srv.pcapng", 9 - i),
            )
        })
        .collect();
    let (rows, _dir) = batch(&files);
    for (i, want) in ["tcp-proxy", "mss-clamp,ecn-bleach", "rst-injector"]
        .iter()
        .enumerate()
    {
        let r = row(&rows, &format!("host-a-{i}.pcapng"));
        assert!(
            r["b"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{}-srv.pcapng", 9 - i)),
            "{r:#}"
        );
        assert_eq!(r["paired_by"], "content");
        assert_eq!(r["middlebox"], *want);
    }
}

#[test]
fn a_truncated_trace_is_reported_and_still_analyzed() {
    let (client, server) = pair("firewall");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcapng");
    let bytes = std::fs::read(&server).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (v, o) = analyze_json(&client, &cut, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cut.pcapng"), "{}", stderr(&o));
    assert!(!v["connections"].as_array().unwrap().is_empty());
}

#[test]
fn every_corpus_file_against_itself_finds_no_middlebox() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    for e in tracekit_testutil::manifest() {
        let path = corpus(&e.file);
        let o = run(tracekit()
            .args(["analyze", "--json", "--quiet"])
            .arg(&path)
            .arg(&path));
        let code = o.status.code();
        assert!(
            matches!(code, Some(0..=2)),
            "{}: {code:?} {}",
            e.file,
            stderr(&o)
        );
        if code == Some(2) {
            // Only files that cannot be opened at all, with a clear message naming them.
            assert!(stderr(&o).contains(&e.file), "{}: {}", e.file, stderr(&o));
            continue;
        }
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        for c in v["connections"].as_array().unwrap() {
            assert_eq!(
                c["middlebox"]["kind"],
                serde_json::json!(["none"]),
                "{}: {c:#}",
                e.file
            );
        }
    }
}

/// The server side without the SYN and SYN/ACK of the NAT pair's second connection: the
/// translated client port (3202) is lower than the server's (4433), so the ports alone make
/// the client the server. The side that sent the Client Hello tells the roles, and the
/// connection is paired and judged as with its handshake.
#[test]
fn a_connection_whose_handshake_was_lost_takes_its_roles_from_the_tls_hellos() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair("nat");
    let (truth, _) = analyze_json(&client, &server, &[]);
    let whole = conn(&truth, 53700);
    let b = &whole["sides"]["b"];
    assert_eq!(b["client"], "198.51.100.1:3202");
    let handshake = [
        b["syn"]["frame"].as_u64().unwrap(),
        b["syn_ack"]["frame"].as_u64().unwrap(),
    ];
    let lossy = without_frames(
        &server,
        &handshake,
        dir.path(),
        "server-without-handshake.pcapng",
    );
    let (v, o) = analyze_json(&client, &lossy, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["unmatched"]["a"], 0, "{:#}", v["unmatched"]);
    assert_eq!(v["unmatched"]["b"], 0, "{:#}", v["unmatched"]);
    let c = conn(&v, 53700);
    assert_eq!(c["sides"]["b"]["client"], "198.51.100.1:3202");
    assert_eq!(c["sides"]["b"]["server"], "198.51.100.20:4433");
    assert_eq!(c["matched_by"], "tls-random");
    assert_eq!(c["middlebox"]["kind"], whole["middlebox"]["kind"]);
    assert_eq!(c["closed_by"], whole["closed_by"]);
    // The frames at the server side moved up by the two removed.
    assert_eq!(
        c["tls"]["client_hello"]["a"],
        whole["tls"]["client_hello"]["a"]
    );
    assert_eq!(c["tls"]["client_random"], whole["tls"]["client_random"]);
    assert_eq!(c["tls"]["client_random_same"], true);
}

/// Where a capture lost packets around the first close, the close it shows is not claimed as
/// the first without saying so. At the client side of the intercept pair, the interceptor's
/// last data and its FIN lost together leave numbers the client acknowledged that the capture
/// lacks (data, or data and a FIN: they cannot tell); with the client's FIN and ACK lost as
/// well, the interceptor's FIN and the client's, read from what shows they passed, can have
/// passed before the server's FIN at the server side. The whole pair claims no such doubt.
#[test]
fn a_first_close_that_may_answer_a_lost_one_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair("intercept");
    let (truth, _) = analyze_json(&client, &server, &[]);
    let whole = conn(&truth, 53695);
    assert_eq!(whole["closed_by"], "middlebox");
    let doubt = "who closed first rests on packets that capture lost";
    let doubted = |c: &Value| {
        c["caveats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().contains(doubt))
            && c["verdict"]
                .as_str()
                .unwrap()
                .contains("as far as the captures show")
    };
    assert!(!doubted(whole), "{whole:#}");
    let fin = whole["sides"]["a"]["server_close"]["frame"]
        .as_u64()
        .unwrap();
    assert!(is_set(&tshark_field(&client, fin, "tcp.flags.fin")));
    assert_ne!(tshark_field(&client, fin - 1, "tcp.len"), "0");
    // The interceptor's last data and FIN; then also the client's ACK and FIN after it.
    for lost in [vec![fin - 1, fin], vec![fin, fin + 1, fin + 2]] {
        let name = format!("client-without-{}.pcapng", lost.len());
        let lossy = without_frames(&client, &lost, dir.path(), &name);
        let (v, o) = analyze_json(&lossy, &server, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let c = conn(&v, 53695);
        assert!(doubted(c), "without {lost:?}: {c:#}");
        let proof = c["close_proof"].as_str().unwrap();
        assert!(
            proof.contains("would have come first") || proof.contains("can have passed before it"),
            "without {lost:?}: {proof}"
        );
    }
}

/// Regression (outside checks): the client reads the answer and closes, the server still sends
/// its close_notify and its FIN, the client's closed socket answers the record with a RST, and
/// the server's FIN reaches the client just after that RST. The server capture shows its FIN
/// leaving before the RST reached it: it answered nothing, so it is no sign of a middlebox, and
/// the connection did not fail. On a routed path and behind a NAT.
#[test]
fn an_abortive_close_after_the_clients_fin_is_neither_a_failure_nor_a_fast_fin() {
    for (name, kinds) in [("close", ["none"]), ("closenat", ["nat"])] {
        let (report, client, _) = analyzed(name);
        for port in [53695, 53700] {
            let c = conn(&report, port);
            assert_eq!(c["failed"], false, "{name} {port}: {c:#}");
            assert_eq!(c["closed_by"], "client", "{name} {port}");
            assert_eq!(
                c["middlebox"]["kind"],
                serde_json::json!(kinds),
                "{name} {port}"
            );
            assert!(
                !signals(c).contains(&"fin-faster-than-rtt"),
                "{name} {port}: {:?}",
                signals(c)
            );
            let proof = c["close_proof"].as_str().unwrap();
            assert!(proof.contains("a normal (abortive) close"), "{proof}");
            let verdict = c["verdict"].as_str().unwrap();
            assert!(!verdict.contains("failed"), "{verdict}");
            // The pattern is really there: at the client side the client's RST comes after its
            // FIN, and the server's FIN after that RST.
            let first = |flag: char, from_client: bool| {
                tshark_fields(
                    &client,
                    &[
                        "frame.number",
                        "tcp.srcport",
                        "tcp.dstport",
                        "tcp.flags.str",
                    ],
                )
                .iter()
                .find_map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    let ports: (u64, u64) = (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?);
                    let ours = if from_client {
                        ports == (port, 8443)
                    } else {
                        ports == (8443, port)
                    };
                    (ours && f[3].contains(flag)).then(|| f[0].parse::<u64>().unwrap())
                })
                .unwrap()
            };
            let (cfin, crst, sfin) = (first('F', true), first('R', true), first('F', false));
            assert!(
                cfin < crst && crst < sfin,
                "{name} {port}: {cfin} {crst} {sfin}"
            );
        }
    }
}

/// Each connection has a display filter per side that isolates it as that side saw it (behind
/// a NAT the two differ), in JSON, text and HTML; tshark with it finds exactly the packets the
/// side view counts.
#[test]
fn each_side_gets_a_display_filter_that_isolates_the_connection_there() {
    let (report, client, server) = analyzed("closenat");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    let text = run(tracekit()
        .args(["analyze", "--quiet", "--html"])
        .arg(&page)
        .arg(&client)
        .arg(&server));
    let (text, html) = (stdout(&text), std::fs::read_to_string(&page).unwrap());
    for port in [53695, 53700] {
        let c = conn(&report, port);
        let [a, b] = ["a", "b"].map(|s| c["sides"][s]["wireshark_filter"].as_str().unwrap());
        assert_ne!(a, b, "behind a NAT the sides differ");
        assert!(a.contains(&format!("tcp.port == {port}")), "{a}");
        assert!(!b.contains(&format!("tcp.port == {port}")), "{b}");
        for (path, side, filter) in [(&client, "a", a), (&server, "b", b)] {
            let n = run(std::process::Command::new("tshark")
                .arg("-r")
                .arg(path)
                .args(["-Y", filter]));
            assert!(n.status.success(), "{filter}: {}", stderr(&n));
            assert_eq!(
                stdout(&n).lines().count() as u64,
                c["sides"][side]["packets"].as_u64().unwrap(),
                "{filter}"
            );
            assert!(
                text.contains(&format!("`{filter}`")),
                "{filter} not in the text"
            );
            assert!(
                html.contains(&format!("data-filter=\"{filter}\""))
                    || html.contains(&format!(
                        "data-filter=\"{}\"",
                        filter.replace("&&", "&amp;&amp;")
                    )),
                "{filter} not in the page"
            );
        }
    }
}

/// Regression (outside checks): a SYN proxy (iptables SYNPROXY on a router) was called a
/// TCP-terminating proxy while the report's own evidence said its segments were forwarded one
/// for one.
#[test]
fn a_syn_proxy_is_told_from_a_tcp_proxy_by_segments_forwarded_one_for_one() {
    let (report, ..) = analyzed("synproxy");
    for port in [53695, 53700] {
        let c = conn(&report, port);
        assert_eq!(
            c["middlebox"]["kind"],
            serde_json::json!(["syn-proxy"]),
            "{c:#}"
        );
        assert_eq!(c["middlebox"]["transparent"], true);
        assert_eq!(
            c["middlebox"]["vendor"],
            "Check Point Software Technologies"
        );
        assert_eq!(c["hops"]["client_side"], 2);
        assert_eq!(c["hops"]["server_side"], 0);
        assert_eq!(c["closed_by"], "client");
        assert_eq!(c["failed"], false);
        let s = signals(c);
        assert!(
            s.contains(&"split-handshake") && s.contains(&"ttl-origin-mismatch"),
            "{s:?}"
        );
        let isn = evidence(c, "isn-rewritten")["detail"].as_str().unwrap();
        assert!(isn.contains("the packets were forwarded"), "{isn}");
        assert!(isn.contains("server's initial sequence number"), "{isn}");
        assert!(
            !isn.contains("client's initial sequence number"),
            "one side is translated: {isn}"
        );
        let verdict = c["verdict"].as_str().unwrap();
        assert!(verdict.contains("as a SYN proxy"), "{verdict}");
        assert!(!verdict.contains("terminated TCP"), "{verdict}");
    }
}

/// A verdict may not contradict the evidence it prints: a box whose segments reappear one for
/// one forwarded them, so it is never called a TCP proxy (which re-segments and re-numbers),
/// on any lab pair.
#[test]
fn no_lab_verdict_contradicts_its_own_forwarding_evidence() {
    let mut forwarding = 0;
    for name in crate::LAB_PAIRS {
        let (report, ..) = analyzed(name);
        for c in report["connections"].as_array().unwrap() {
            let forwarded = c["evidence"].as_array().unwrap().iter().any(|e| {
                e["detail"]
                    .as_str()
                    .unwrap()
                    .contains("the packets were forwarded")
            });
            let kinds = c["middlebox"]["kind"].as_array().unwrap();
            let proxy = kinds.iter().any(|k| k == "tcp-proxy");
            assert!(!(forwarded && proxy), "{name}: {c:#}");
            if forwarded {
                forwarding += 1;
                let verdict = c["verdict"].as_str().unwrap();
                assert!(!verdict.contains("terminated TCP"), "{name}: {verdict}");
            }
        }
    }
    // The rule was put to the test: scramble's and synproxy's connections forward.
    assert!(forwarding >= 4, "{forwarding}");
}
