//! `tracekit index` and `extract --index`: the same bytes as the full scan for many
//! selections, also after files are added, truncated, replaced or removed; stale and damaged
//! indexes refused.

use std::path::{Path, PathBuf};

use crate::analyze_sets::{generated, rotate};
use crate::{corpus, records_of, run, stderr, stdout, succeed, testdata, tracekit};

/// A set: generated traffic rotated into eight pcap files, and corpus pcaps of other link
/// types, VLANs, IPv6, fragments, ARP (their own times: the set is merged by time).
fn set(dir: &Path) -> PathBuf {
    let (client, _) = generated(400, 0);
    let whole = dir.join("whole.pcap");
    std::fs::write(&whole, client).unwrap();
    let set = dir.join("set");
    rotate(&whole, &set, &["-F", "pcap", "-c", "400"], "rot-");
    for name in [
        "ppp_VlanPackets.pcap",
        "ppp_ip6_fragments.pcap",
        "ppp_ip4_fragments.pcap",
        "ppp_many-protocols.pcap",
        "tcpdump_pptp_be.pcap",
        "suri_nfs3_be_v2.1.pcap",
    ] {
        std::fs::copy(corpus(name), set.join(name)).unwrap();
    }
    set
}

fn index(set: &Path, ix: &Path) -> String {
    let o = succeed(tracekit().arg("index").arg("-o").arg(ix).arg(set));
    stderr(&o)
}

/// Extracts `selection` from `set` by a full scan and from the index `ix`: the two outputs'
/// bytes (both must succeed).
fn both(set: &Path, ix: &Path, selection: &[&str], dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let (full, indexed) = (dir.join("full.out"), dir.join("indexed.out"));
    let o = run(tracekit()
        .args(["extract", "-q", "-o"])
        .arg(&full)
        .args(selection)
        .arg(set));
    // (Exit 1 for damage read past, as in a truncated file, which both report.)
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{selection:?}: {}",
        stderr(&o)
    );
    let p = run(tracekit()
        .args(["extract", "-q", "-o"])
        .arg(&indexed)
        .arg("--index")
        .arg(ix)
        .args(selection));
    assert_eq!(
        p.status.code(),
        o.status.code(),
        "{selection:?} from the index: {}",
        stderr(&p)
    );
    (
        std::fs::read(&full).unwrap(),
        std::fs::read(&indexed).unwrap(),
    )
}

/// `tracekit flows ARGS` over `set` (its path made absolute, as the index names its files)
/// and from the index `ix`: both outputs (both must succeed), and what the indexed one said.
fn flows_both(set: &Path, ix: &Path, args: &[&str]) -> (String, String, String) {
    let set = std::fs::canonicalize(set).unwrap();
    let full = run(tracekit().arg("flows").args(args).arg(&set));
    let indexed = run(tracekit().arg("flows").args(args).arg("--index").arg(ix));
    assert_eq!(
        full.status.code(),
        indexed.status.code(),
        "{args:?}: {} / {}",
        stderr(&full),
        stderr(&indexed)
    );
    let said = stderr(&indexed);
    (
        String::from_utf8(full.stdout).unwrap(),
        String::from_utf8(indexed.stdout).unwrap(),
        said,
    )
}

/// The flow table from the index equals the full scan's, row for row: the stored one without
/// a selection (no packet read), in both formats and ranked by `--top`; narrowed by the
/// index for every selection of `SELECTIONS`.
fn flows_agree(set: &Path, ix: &Path) {
    for args in [
        &[][..],
        &["--format", "csv"],
        &["--top", "5", "--by", "duration"],
        &["--top", "9", "--by", "packets", "--format", "csv"],
        &["--top", "3"],
    ] {
        let (full, indexed, said) = flows_both(set, ix, args);
        assert!(full.lines().count() > 2, "{args:?}: {full}");
        assert_eq!(full, indexed, "{args:?}");
        assert!(said.contains("from the index's flow table"), "{said}");
    }
    for sel in SELECTIONS {
        let (full, indexed, said) = flows_both(set, ix, sel);
        assert_eq!(full, indexed, "{sel:?}");
        assert!(!said.contains("flow table"), "{said}");
    }
}

/// info from the index: what info of the files prints, text and JSON, without reading them.
fn info_agrees(set: &Path, ix: &Path) {
    for json in [&[][..], &["--json"][..]] {
        let full = succeed(tracekit().arg("info").args(json).arg(set));
        let indexed = succeed(tracekit().arg("info").args(json).arg("--index").arg(ix));
        assert!(!full.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&indexed.stdout),
            String::from_utf8_lossy(&full.stdout)
        );
    }
}

/// Community IDs of every flow of the set's fragment captures (a fragment after the first is
/// matched by its first), and of generated flows (last).
fn community_ids(set: &Path) -> Vec<String> {
    let rows = succeed(
        tracekit()
            .args(["flows", "--format", "csv"])
            .arg(set.join("ppp_ip4_fragments.pcap"))
            .arg(set.join("ppp_ip6_fragments.pcap"))
            .arg(set.join("rot-003.pcap")),
    );
    let text = String::from_utf8(rows.stdout).unwrap();
    let mut header = text.lines().next().unwrap().split(',');
    let column = header.position(|c| c == "community_id").unwrap();
    let ids: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(column))
        .filter(|id| id.starts_with("1:"))
        .map(str::to_string)
        .collect();
    assert!(ids.len() > 20, "{}", ids.len());
    ids
}

const SELECTIONS: &[&[&str]] = &[
    &["--filter", "host 192.0.2.10"],
    &["--filter", "host 198.51.100.20 and port 20007"],
    &["--filter", "port 20007 or port 20100"],
    &["--filter", "tcp port 20399"],
    &["--filter", "udp"],
    &["--filter", "icmp or icmp6"],
    &["--filter", "ip6"],
    &["--filter", "vlan"],
    &["--filter", "vlan 200"],
    &["--filter", "arp"],
    &["--filter", "not tcp"],
    &["--filter", "tcp[tcpflags] & tcp-syn != 0"],
    &["--filter", "net 192.0.2.0/24 and port 20001"],
    &["--filter", "host 203.0.113.99"],
    &["--after", "1700000010", "--before", "1700000012"],
    &["--after", "1700000005", "--filter", "port 20040"],
    &["--frames", "100-120"],
    &["--after", "+10s", "--before", "+12s"],
    &["--community-id", "1:LQU9qZlK+B5F3KDmev6m5PMibrg="],
];

#[test]
fn indexed_answers_are_the_full_scans_byte_for_byte() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let set = set(dir.path());
    let ix = dir.path().join("ix");
    let said = index(&set, &ix);
    assert!(said.contains("14 files"), "{said}");
    assert!(said.contains("14 indexed"), "{said}");
    info_agrees(&set, &ix);
    let mut nonempty = 0;
    for sel in SELECTIONS {
        let (full, indexed) = both(&set, &ix, sel, dir.path());
        assert!(
            full == indexed,
            "{sel:?}: {} vs {} bytes",
            full.len(),
            indexed.len()
        );
        nonempty += usize::from(full.len() > 100);
    }
    assert!(nonempty >= 12, "{nonempty} selections found packets");
    flows_agree(&set, &ix);
    let ids = community_ids(&set);
    for id in ids.iter().step_by(3) {
        let (full, indexed) = both(&set, &ix, &["--community-id", id], dir.path());
        assert!(full.len() > 24 && full == indexed, "{id}");
        let (full, indexed) = both(
            &set,
            &ix,
            &["--community-id", id, "--seed", "7"],
            dir.path(),
        );
        assert!(full == indexed, "{id} (seed 7)");
    }
    // Hosts files: a few addresses (looked up) and a wide prefix (every block).
    for (name, text) in [
        ("few.txt", "# two hosts\n192.0.2.10\n2001:db8::1\n"),
        ("wide.txt", "10.0.0.0/8\n192.0.2.0/24\n"),
    ] {
        let hosts = dir.path().join(name);
        std::fs::write(&hosts, text).unwrap();
        let h = hosts.to_str().unwrap();
        for sel in [
            &["--hosts-file", h][..],
            &["--hosts-file", h, "--filter", "port 20009"],
        ] {
            let (full, indexed) = both(&set, &ix, sel, dir.path());
            assert!(full.len() > 100 && full == indexed, "{sel:?}");
        }
    }
    // The index read only some blocks for a rare port, a host, a window.
    let read = |sel: &[&str], from: &[&std::ffi::OsStr]| -> u64 {
        let o = succeed(
            tracekit()
                .args(["extract", "-o"])
                .arg(dir.path().join("r.pcap"))
                .args(sel)
                .args(from),
        );
        let e = stderr(&o);
        let line = e
            .lines()
            .find(|l| l.contains("selected of"))
            .unwrap_or_else(|| panic!("{e}"));
        assert_eq!(from.len() == 2, line.contains("(from the index"), "{e}");
        line.split("selected of ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let via = [std::ffi::OsStr::new("--index"), ix.as_os_str()];
    let generated_flow = ids.last().unwrap().as_str();
    for sel in [
        &["--community-id", generated_flow][..],
        &["--filter", "port 20007"],
        &["--filter", "host 203.0.113.99 or udp port 2049"],
        &[
            "--after",
            "1700000010",
            "--before",
            "1700000012",
            "--filter",
            "tcp",
        ],
    ] {
        let all = read(sel, &[set.as_os_str()]);
        let some = read(sel, &via);
        // (The full scan of a window passes over other files after a header walk; the
        // index needs no walk, and reads the blocks of the window.)
        let windowed = sel[0] == "--after";
        assert!(
            some * 2 < all || windowed && some <= all,
            "{sel:?}: {some} of {all} read"
        );
    }
}

#[test]
fn an_index_follows_its_directory_and_refuses_what_changed() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let set = set(dir.path());
    let ix = dir.path().join("ix");
    index(&set, &ix);
    let sel: &[&str] = &["--filter", "port 20007 or udp"];
    // A new rotated file: indexed alone.
    std::fs::copy(corpus("ppp_DnsPackets.pcap"), set.join("zz-new.pcap")).unwrap();
    let said = index(&set, &ix);
    assert!(
        said.contains("1 indexed (0 changed since), 14 unchanged"),
        "{said}"
    );
    assert!(said.contains("flow table made"), "{said}");
    let (full, indexed) = both(&set, &ix, sel, dir.path());
    assert!(full == indexed);
    let (full, indexed, _) = flows_both(&set, &ix, &[]);
    assert!(full.contains("zz-new.pcap") && full == indexed);
    // Nothing changed: nothing indexed, the flow table kept.
    let said = index(&set, &ix);
    assert!(
        said.contains("0 indexed") && said.contains("flow table unchanged"),
        "{said}"
    );
    // A file cut short: the index is stale until indexed again.
    let victim = set.join("rot-004.pcap");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 1000]).unwrap();
    let o = run(tracekit()
        .args(["extract", "-q", "-o"])
        .arg(dir.path().join("x.pcap"))
        .arg("--index")
        .arg(&ix)
        .args(sel));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("stale index") && stderr(&o).contains("rot-004.pcap"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("x.pcap").exists(), "nothing written");
    let said = index(&set, &ix);
    assert!(said.contains("1 indexed (1 changed since)"), "{said}");
    let (full, indexed) = both(&set, &ix, sel, dir.path());
    assert!(full == indexed);
    // Replaced by another file of the same size: refused too.
    let other = set.join("rot-002.pcap");
    let mut b = std::fs::read(&other).unwrap();
    let n = b.len();
    b[n - 5] ^= 0xff;
    std::fs::write(&other, &b).unwrap();
    let o = run(tracekit()
        .args(["extract", "-q", "-o"])
        .arg(dir.path().join("x.pcap"))
        .arg("--index")
        .arg(&ix)
        .args(sel));
    assert!(
        stderr(&o).contains("rot-002.pcap was modified"),
        "{}",
        stderr(&o)
    );
    // A file removed: dropped by the next run.
    std::fs::remove_file(set.join("zz-new.pcap")).unwrap();
    let said = index(&set, &ix);
    assert!(said.contains("1 dropped"), "{said}");
    let (full, indexed) = both(&set, &ix, sel, dir.path());
    assert!(full == indexed);
    let (full, indexed, _) = flows_both(&set, &ix, &[]);
    assert!(!full.contains("zz-new.pcap") && full == indexed);
}

/// Every file of an index directory (the manifest, the flow table and its saved state, the
/// parts), by name, with its bytes.
pub fn tree(ix: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for sub in ["", "parts"] {
        for e in std::fs::read_dir(ix.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let name = p.strip_prefix(ix).unwrap().display().to_string();
                files.push((name, std::fs::read(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// `tracekit index --flow-state`: what it says.
fn index_keeping_state(set: &Path, ix: &Path) -> String {
    let o = succeed(
        tracekit()
            .args(["index", "--flow-state", "-o"])
            .arg(ix)
            .arg(set),
    );
    stderr(&o)
}

/// A set that grew by files that come after it in time: its flow table is carried on from
/// the table the last run saved, reading only the new files, and the index is the one a
/// fresh run over the whole set makes, byte for byte (flow table and saved state included).
/// A new file that comes earlier in time, or a saved state that is damaged, makes the run
/// count every file again, with the same answer.
#[test]
fn a_grown_set_carries_its_flow_table_on_from_where_the_last_run_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    std::fs::create_dir(&set).unwrap();
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(testdata("rotated"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    rotated.sort();
    let add = |files: &[PathBuf]| {
        for f in files {
            std::fs::copy(f, set.join(f.file_name().unwrap())).unwrap();
        }
    };
    let ix = dir.path().join("ix");
    let agree = |what: &str| {
        for sel in [&[][..], &["--filter", "udp or icmp"], &["--format", "csv"]] {
            let (full, indexed, _) = flows_both(&set, &ix, sel);
            assert!(full.lines().count() > 10, "{what} {sel:?}");
            assert!(full == indexed, "{what} {sel:?}: the rows differ");
        }
    };
    add(&rotated[..3]);
    // Without --flow-state no state is kept, and a grown set is counted again.
    index(&set, &ix);
    assert!(!ix.join(tracekit_index::STATE).exists());
    add(&rotated[3..4]);
    assert!(index(&set, &ix).contains("flow table made"));
    // Asked for, on a set that has not changed: counted again to save the state.
    let said = index_keeping_state(&set, &ix);
    assert!(said.contains("flow table made"), "{said}");
    assert!(ix.join(tracekit_index::STATE).exists());
    // Once kept, kept up to date without the option.
    for (k, range) in [(1, 4..6), (2, 6..9)] {
        add(&rotated[range.clone()]);
        let said = index(&set, &ix);
        let n = range.len();
        assert!(
            said.contains(&format!("flow table carried on over the {n} new file(s)")),
            "{said}"
        );
        let fresh = dir.path().join(format!("fresh-{k}"));
        assert!(index_keeping_state(&set, &fresh).contains("flow table made"));
        let (a, b) = (tree(&ix), tree(&fresh));
        assert!(
            a.iter().any(|f| f.0 == tracekit_index::STATE),
            "a state saved"
        );
        assert_eq!(
            a.iter().map(|f| &f.0).collect::<Vec<_>>(),
            b.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        assert!(
            a == b,
            "carried on over {n} file(s): other bytes than a fresh index"
        );
        agree("carried on");
    }
    // Later still: the last file again, an hour on (its conversations go on after a pause).
    let shifted = |name: &str, secs: &str| {
        let o = run(std::process::Command::new("editcap")
            .args(["-F", "pcap", "-t", secs])
            .arg(&rotated[8])
            .arg(set.join(name)));
        assert!(o.status.success(), "{}", stderr(&o));
    };
    shifted("rot-009.pcap", "3600");
    assert!(index(&set, &ix).contains("carried on over the 1 new file(s)"));
    agree("an hour on");
    // A file earlier in time than the set's end, though its name sorts last: every file is
    // counted again.
    std::fs::copy(&rotated[3], set.join("zz-early.pcap")).unwrap();
    let said = index(&set, &ix);
    assert!(said.contains("flow table made"), "{said}");
    agree("earlier in time");
    std::fs::remove_file(set.join("zz-early.pcap")).unwrap();
    assert!(index(&set, &ix).contains("flow table made"));
    // A damaged state is not carried on from.
    let state = ix.join(tracekit_index::STATE);
    let mut bytes = std::fs::read(&state).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x55;
    std::fs::write(&state, &bytes).unwrap();
    shifted("rot-010.pcap", "7200");
    let said = index(&set, &ix);
    assert!(said.contains("flow table made"), "{said}");
    agree("a damaged state");
    // The state saved then is whole again.
    shifted("rot-011.pcap", "10800");
    assert!(index(&set, &ix).contains("carried on over the 1 new file(s)"));
    agree("after the damage");
    let fresh = dir.path().join("fresh-last");
    index_keeping_state(&set, &fresh);
    assert!(tree(&ix) == tree(&fresh));
    // --rebuild without the option drops the state.
    succeed(
        tracekit()
            .args(["index", "--rebuild", "-q", "-o"])
            .arg(&ix)
            .arg(&set),
    );
    assert!(!ix.join(tracekit_index::STATE).exists());
}

/// A classic pcap (little-endian, as `generated` writes it) with some records moved out of
/// time order: every seventh pair swapped, and a record given its neighbour's time now and
/// then (ties the merge breaks by file order).
fn disordered(pcap: &[u8]) -> Vec<u8> {
    let (head, mut rest) = pcap.split_at(24);
    let mut records: Vec<Vec<u8>> = Vec::new();
    while rest.len() >= 16 {
        let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let (r, tail) = rest.split_at(16 + len);
        records.push(r.to_vec());
        rest = tail;
    }
    for k in (0..records.len().saturating_sub(1)).filter(|k| k % 7 == 3) {
        records.swap(k, k + 1);
    }
    for k in (1..records.len()).filter(|k| k % 11 == 5) {
        let ts: [u8; 8] = records[k - 1][..8].try_into().unwrap();
        records[k][..8].copy_from_slice(&ts);
    }
    let mut out = head.to_vec();
    for r in records {
        out.extend_from_slice(&r);
    }
    out
}

/// Files that overlap in time interleave in the merge: frame numbers count the other file's
/// records from their times; the rows are the same. A file out of time order is read by time
/// (a tie in file order), from the index as by the full scan.
#[test]
fn flows_of_files_overlapping_in_time_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = generated(120, 0);
    let set = dir.path().join("set");
    std::fs::create_dir(&set).unwrap();
    std::fs::write(set.join("a.pcap"), &client).unwrap();
    let shifted = run(std::process::Command::new("editcap")
        .args(["-F", "pcap", "-t", "0.5"])
        .arg(set.join("a.pcap"))
        .arg(set.join("b.pcap")));
    assert!(shifted.status.success());
    let ix = dir.path().join("ix");
    index(&set, &ix);
    for sel in [&["--filter", "port 20007"][..], &["--filter", "tcp"], &[]] {
        let (full, indexed, said) = flows_both(&set, &ix, sel);
        assert!(full.lines().count() >= 1, "{sel:?}");
        assert_eq!(full, indexed, "{sel:?}");
        assert!(sel.is_empty() || said.contains("record(s) read"), "{said}");
    }
    std::fs::write(set.join("c.pcap"), disordered(&client)).unwrap();
    index(&set, &ix);
    let manifest = std::fs::read_to_string(ix.join("tracekit-index.json")).unwrap();
    assert!(
        manifest.contains("\"in_order\": false"),
        "c.pcap is out of order"
    );
    for sel in [
        &["--filter", "port 20007"][..],
        &["--filter", "tcp"],
        &["--filter", "udp or port 20011"],
        &[],
    ] {
        let (full, indexed, said) = flows_both(&set, &ix, sel);
        assert!(full.lines().count() >= 1, "{sel:?}");
        assert_eq!(full, indexed, "{sel:?}, a file out of order");
        assert!(sel.is_empty() || said.contains("record(s) read"), "{said}");
    }
}

fn refused_flows(ix: &Path) {
    let o = run(tracekit().args(["flows", "--index"]).arg(ix));
    assert!(
        !o.status.success() && stderr(&o).contains("the index is damaged") && o.stdout.is_empty(),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_damaged_or_foreign_index_is_refused_and_rebuilt_on_request() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let set = set(dir.path());
    let ix = dir.path().join("ix");
    index(&set, &ix);
    let query_for = |filter: &str, ix: &Path| {
        run(tracekit()
            .args(["extract", "-q", "--filter", filter, "-o"])
            .arg(dir.path().join("x.pcap"))
            .arg("--index")
            .arg(ix))
    };
    let query = |ix: &Path| query_for("udp", ix);
    // A byte of a part's sieve flipped (every narrowed query reads every sieve's table), one
    // of its head (read by a query that needs the part: one that cannot be narrowed), the
    // last of every part (in the postings of its highest key: an address family, ARP, or the
    // records no key describes, read by every query of a part that has some).
    let mut parts: Vec<PathBuf> = std::fs::read_dir(ix.join("parts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    let first = std::fs::read(&parts[0]).unwrap();
    // The head follows the magic, the sieve's table and the head's length and checksum.
    let table = usize::try_from(u64::from_le_bytes(first[8..16].try_into().unwrap())).unwrap();
    let head = 8 + 40 + table + 40;
    // (None: the last byte.)
    for (damaged, at, filter) in [
        (&parts[..1], Some(60), "udp"),
        (&parts[..1], Some(head + 4), "not udp"),
        (&parts[..], None, "ip or ip6 or arp"),
    ] {
        let good: Vec<Vec<u8>> = damaged.iter().map(|p| std::fs::read(p).unwrap()).collect();
        for (p, g) in damaged.iter().zip(&good) {
            let mut b = g.clone();
            b[at.unwrap_or(g.len() - 1)] ^= 1;
            std::fs::write(p, &b).unwrap();
        }
        let o = query_for(filter, &ix);
        assert!(!o.status.success(), "{filter}");
        assert!(
            stderr(&o).contains("the index is damaged"),
            "{}",
            stderr(&o)
        );
        assert!(!dir.path().join("x.pcap").exists(), "nothing written");
        for (p, g) in damaged.iter().zip(&good) {
            std::fs::write(p, g).unwrap();
        }
    }
    // A byte of the flow table flipped: refused by `flows --index`.
    let table = ix.join("flows.parquet");
    let mut b = std::fs::read(&table).unwrap();
    b[20] ^= 1;
    std::fs::write(&table, &b).unwrap();
    refused_flows(&ix);
    // The manifest edited, or of another version; not an index at all.
    let manifest = ix.join("tracekit-index.json");
    let edit = |from: &str, to: &str| {
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, text.replacen(from, to, 1)).unwrap();
    };
    let refused = |o: std::process::Output, why: &str| {
        assert!(
            !o.status.success() && stderr(&o).contains(why),
            "{why}: {}",
            stderr(&o)
        );
    };
    edit("\"packets\": ", "\"packets\": 1");
    refused(query(&ix), "the manifest is damaged");
    // Indexing over it is refused too, unless asked to rebuild.
    refused(
        run(tracekit().arg("index").arg("-o").arg(&ix).arg(&set)),
        "the manifest is damaged",
    );
    succeed(
        tracekit()
            .args(["index", "--rebuild", "-o"])
            .arg(&ix)
            .arg(&set),
    );
    assert!(query(&ix).status.success());
    refused(query(&set), "not a tracekit index");
    let version = format!("\"version\": {}", tracekit_index::VERSION);
    edit(&version, "\"version\": 99");
    refused(query(&ix), "index format version 99");
}

/// UDP flows of many hosts, interleaved in time (each flow's 12 packets 37 ms apart, a flow
/// starting every millisecond), rotated into files of 1,200 records (the second gzipped): each
/// host has a few records in every small block, so an index of small blocks lists its
/// records one by one.
fn interleaved(dir: &Path) -> PathBuf {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.truncate(24);
    let mut packets: Vec<(i64, Vec<u8>)> = Vec::new();
    for i in 0..300u32 {
        for j in 0..12u32 {
            let back = j % 2 == 1;
            let (c, s) = ([10, 1, (i % 50) as u8, 7], [198, 51, 100, (i % 7) as u8]);
            let (src, dst) = if back { (s, c) } else { (c, s) };
            let (sport, dport) = (30_000 + i as u16, 5_000 + (i % 3) as u16);
            let (sport, dport) = if back { (dport, sport) } else { (sport, dport) };
            let mut p = vec![0u8; 14 + 20 + 8 + 20];
            p[12..14].copy_from_slice(&[0x08, 0x00]);
            p[14..18].copy_from_slice(&[0x45, 0, 0, 48]);
            p[22] = 64;
            p[23] = 17;
            p[26..30].copy_from_slice(&src);
            p[30..34].copy_from_slice(&dst);
            p[34..36].copy_from_slice(&sport.to_be_bytes());
            p[36..38].copy_from_slice(&dport.to_be_bytes());
            p[38..40].copy_from_slice(&28u16.to_be_bytes());
            p[42] = j as u8;
            let ns =
                1_700_000_000_000_000_000 + i64::from(i) * 1_000_000 + i64::from(j) * 37_000_000;
            packets.push((ns, p));
        }
    }
    packets.sort_by_key(|p| p.0);
    for (ns, p) in packets {
        let us = ns / 1000;
        for v in [
            (us / 1_000_000) as u32,
            (us % 1_000_000) as u32,
            p.len() as u32,
            p.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&p);
    }
    let whole = dir.join("interleaved.pcap");
    std::fs::write(&whole, out).unwrap();
    let set = dir.join("iset");
    rotate(&whole, &set, &["-F", "pcap", "-c", "1200"], "rot-");
    // One file gzip-compressed: read from memory, not from its file.
    let last = set.join("rot-002.pcap");
    let status = std::process::Command::new("gzip")
        .arg(&last)
        .status()
        .unwrap();
    assert!(status.success());
    for name in ["ppp_ip4_fragments.pcap", "ppp_ip6_fragments.pcap"] {
        std::fs::copy(corpus(name), set.join(name)).unwrap();
    }
    set
}

/// Two indexes of `set` in `dir`: of blocks of 40 records, and of the default blocks.
fn small_and_big(set: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let (small, big) = (dir.join("small"), dir.join("big"));
    std::fs::create_dir_all(dir).unwrap();
    succeed(
        tracekit()
            .args(["index", "-q", "--block-records", "40", "-o"])
            .arg(&small)
            .arg(set),
    );
    index(set, &big);
    (small, big)
}

/// `host 10.1.3.7` extracted from the index `ix` into `out`: (packets selected, records
/// read).
fn host_from_index(ix: &Path, out: &Path) -> (u64, u64) {
    selected_and_read(&[
        "-o".as_ref(),
        out.as_os_str(),
        "--filter".as_ref(),
        "host 10.1.3.7".as_ref(),
        "--index".as_ref(),
        ix.as_os_str(),
    ])
}

/// `sel` from `set` and from the index `ix`: the same bytes, and some packets.
fn same_and_found(set: &Path, ix: &Path, sel: &[&str], dir: &Path) {
    let (full, indexed) = both(set, ix, sel, dir);
    assert!(
        full.len() > 100 && full == indexed,
        "{sel:?}: {} vs {}",
        full.len(),
        indexed.len()
    );
}

/// (packets selected, records read) as `extract` reports them.
fn selected_and_read(args: &[&std::ffi::OsStr]) -> (u64, u64) {
    let o = succeed(tracekit().arg("extract").args(args));
    let e = stderr(&o);
    let line = e
        .lines()
        .find(|l| l.contains("selected of"))
        .unwrap_or_else(|| panic!("{e}"));
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

#[test]
fn an_index_of_small_blocks_reads_a_hosts_records_one_by_one_with_the_same_answers() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let set = interleaved(dir.path());
    let (small, big) = small_and_big(&set, dir.path());
    let ids = community_ids(&set);
    let mut selections: Vec<Vec<&str>> = [
        &["--filter", "host 10.1.3.7"][..],
        &["--filter", "host 10.1.3.7 or host 10.1.4.7"],
        &["--filter", "host 10.1.3.7 and port 5000"],
        &["--filter", "src host 198.51.100.3 and udp"],
        &["--filter", "udp port 30007 or port 30100"],
        &["--filter", "port 5002"],
        &[
            "--filter",
            "host 10.1.9.7",
            "--after",
            "2023-11-14T22:13:20.2Z",
            "--before",
            "2023-11-14T22:13:20.5Z",
        ],
        &["--filter", "ip and not host 10.1.3.7"],
        &["--frames", "10-20"],
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    selections.extend(
        ids.iter()
            .step_by(5)
            .map(|id| vec!["--community-id", id.as_str()]),
    );
    for ix in [&small, &big] {
        for sel in &selections {
            same_and_found(&set, ix, sel, dir.path());
        }
    }
    // A host in one flow of fifty: the small blocks read its records alone, the big ones
    // whole blocks.
    let out = dir.path().join("h.pcap");
    let ask = |ix: &Path| host_from_index(ix, &out);
    let (selected, read) = ask(&small);
    assert!(selected == 72 && read == selected, "{selected} of {read}");
    let (selected, read) = ask(&big);
    assert!(
        selected == 72 && read > 10 * selected,
        "{selected} of {read}"
    );
    // Another block size re-indexes every file.
    let said = stderr(&succeed(
        tracekit()
            .args(["index", "--block-records", "64", "-o"])
            .arg(&small)
            .arg(&set),
    ));
    let files = std::fs::read_dir(&set).unwrap().count();
    assert!(said.contains(&format!("{files} indexed")), "{said}");
}

/// Appends a little-endian pcapng block.
fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = (body.len() + 12) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&len.to_le_bytes());
}

/// Writes `packets` (time in ns, Ethernet frame) as pcapng: a section, an interface, the
/// packets, an interface statistics block after every `every`-th packet and at the end (as
/// dumpcap writes them), a name resolution block and a custom block after the first.
fn pcapng_with_side_blocks(path: &Path, packets: &[(i64, Vec<u8>)], every: usize) {
    let mut out = Vec::new();
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = vec![1, 0, 0, 0];
    idb.extend_from_slice(&65_535u32.to_le_bytes());
    block(&mut out, 1, &idb);
    let stats = |out: &mut Vec<u8>, us: u64| {
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(us as u32).to_le_bytes());
        block(out, 5, &b);
    };
    for (i, (ns, p)) in packets.iter().enumerate() {
        let us = (*ns / 1000) as u64;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(us as u32).to_le_bytes());
        epb.extend_from_slice(&(p.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(p.len() as u32).to_le_bytes());
        epb.extend_from_slice(p);
        block(&mut out, 6, &epb);
        if (i + 1) % every == 0 {
            stats(&mut out, us);
        }
        if i == 0 {
            let mut nrb = vec![1, 0, 12, 0, 198, 51, 100, 3];
            nrb.extend_from_slice(b"srv3\0\0\0\0");
            nrb.extend_from_slice(&[0, 0, 0, 0]);
            block(&mut out, 4, &nrb);
            let mut custom = 32_473u32.to_le_bytes().to_vec();
            custom.extend_from_slice(b"tracekit test");
            block(&mut out, 0x0000_0bad, &custom);
        }
    }
    let last = packets.last().map_or(0, |p| (p.0 / 1000) as u64);
    stats(&mut out, last);
    std::fs::write(path, out).unwrap();
}

#[test]
fn pcapng_sets_are_narrowed_with_their_side_blocks_where_the_full_scan_has_them() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = interleaved(dir.path());
    // Two capture points (even and odd flows, by client port), each rotated into pcapng files
    // of 500 packets: their records interleave in time across files.
    let whole = records_of(&dir.path().join("interleaved.pcap"));
    let set = dir.path().join("ngset");
    std::fs::create_dir(&set).unwrap();
    for side in 0..2u16 {
        let mine: Vec<(i64, Vec<u8>)> = whole
            .iter()
            .filter(|(_, p)| {
                let port =
                    u16::from_be_bytes([p[34], p[35]]).max(u16::from_be_bytes([p[36], p[37]]));
                port % 2 == side
            })
            .cloned()
            .collect();
        for (k, chunk) in mine.chunks(500).enumerate() {
            let every = if side == 0 { 170 } else { 333 };
            pcapng_with_side_blocks(&set.join(format!("p{side}-{k:03}.pcapng")), chunk, every);
        }
    }
    // And a pcap of the same traffic, and corpus pcapng files with blocks of every kind.
    std::fs::copy(pcap.join("rot-001.pcap"), set.join("q-rot-001.pcap")).unwrap();
    for name in [
        "pcapng-gen_le_test102_allblocks.pcapng",
        "zeek_pcapng-multi-interface.pcapng",
    ] {
        std::fs::copy(corpus(name), set.join(name)).unwrap();
    }
    let (small, big) = small_and_big(&set, dir.path());
    for ix in [&small, &big] {
        for sel in [
            &["--filter", "host 10.1.3.7"][..],
            &[
                "--filter",
                "host 10.1.3.7 or host 10.1.4.7",
                "--format",
                "pcapng",
            ],
            &["--filter", "udp port 30007"],
            &["--filter", "port 5002 and host 198.51.100.2"],
            &[
                "--after",
                "2023-11-14T22:13:20.2Z",
                "--before",
                "2023-11-14T22:13:20.3Z",
            ],
            &["--filter", "not udp"],
            &["--filter", "host 192.0.2.1 or tcp"],
        ] {
            same_and_found(&set, ix, sel, dir.path());
        }
    }
    // The small blocks read the host's records (and the record before each run of side
    // blocks), the big ones whole files.
    let out = dir.path().join("h.pcapng");
    let ask = |ix: &Path| host_from_index(ix, &out);
    let (_, read_big) = ask(&big);
    let (selected, read) = ask(&small);
    assert!(
        selected == 92 && read * 3 < read_big && read < 1000,
        "{selected} of {read} ({read_big})"
    );
    // Wireshark reads it, side blocks and all (it shows custom blocks as frames of their own).
    let text = stdout(&succeed(
        std::process::Command::new("tshark")
            .arg("-r")
            .arg(&out)
            .args([
                "-Y",
                "ip.addr == 10.1.3.7",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ]),
    ));
    assert_eq!(text.lines().count() as u64, selected);
    // flows --index with a selection: the same rows, walked the same way (numbering frames
    // needs every file in time order: the one that is not leaves the set first).
    std::fs::remove_file(set.join("pcapng-gen_le_test102_allblocks.pcapng")).unwrap();
    let (small2, big2) = small_and_big(&set, &dir.path().join("again"));
    for ix in [&small2, &big2] {
        for sel in [
            &["--filter", "host 10.1.3.7"][..],
            &["--filter", "udp port 30007 or host 198.51.100.4"],
            &["--after", "2023-11-14T22:13:20.2Z", "--filter", "port 5001"],
        ] {
            let (full, indexed, said) = flows_both(&set, ix, sel);
            assert!(full.lines().count() > 1 && full == indexed, "{sel:?}");
            assert!(said.contains("record(s) read"), "{said}");
        }
    }
}
