//! `tracekit step` (issue 27): a plan, its tasks run by `xargs -P` in any order (also twice),
//! and the finish print what the command prints on one machine, byte for byte.

use std::path::{Path, PathBuf};

use crate::split::files_of;
use crate::{run, stderr, stdout, succeed, testdata, tracekit};

/// A directory of captures with one that is not a capture and one cut short.
fn set(dir: &Path) -> Vec<PathBuf> {
    let d = dir.join("set");
    std::fs::create_dir_all(d.join("more")).unwrap();
    for name in ["handshake.pcap", "mixed.pcapng", "handshake.pcap.gz"] {
        std::fs::copy(testdata(name), d.join(name)).unwrap();
    }
    for n in 0..4 {
        std::fs::copy(
            testdata("firewall-client.pcapng"),
            d.join("more").join(format!("rot-{n}.pcapng")),
        )
        .unwrap();
    }
    std::fs::write(d.join("notes.txt"), "not a capture\n").unwrap();
    let whole = std::fs::read(testdata("handshake.pcap")).unwrap();
    std::fs::write(d.join("cut.pcap"), &whole[..whole.len() - 5]).unwrap();
    vec![d, testdata("close-server.pcapng")]
}

/// The plan, every task by `xargs -P 2` (in reverse order), the finish: as the docs show it.
fn by_xargs(plan: &Path, shards: usize, args: &[&str], inputs: &[PathBuf]) -> std::process::Output {
    let out = planned_by_xargs(plan, &["--shards", &shards.to_string()], args, inputs);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let tasks = v["stages"][0]["tasks"].as_array().unwrap().len();
    let inputs = v["inputs"].as_array().unwrap().len();
    assert_eq!(
        tasks,
        if shards == 0 {
            inputs
        } else {
            shards.min(inputs)
        }
    );
    out
}

/// `step plan PLAN_ARGS… ARGS… INPUTS…`, each stage's tasks by `xargs -P 2` (in reverse
/// order), a stage after the one before, then the finish.
fn planned_by_xargs(
    plan: &Path,
    plan_args: &[&str],
    args: &[&str],
    inputs: &[PathBuf],
) -> std::process::Output {
    succeed(
        tracekit()
            .args(["step", "plan", "-o"])
            .arg(plan)
            .args(plan_args)
            .args(args)
            .args(inputs),
    );
    // The stages and their task counts as a scheduler's script reads them (`step tasks`),
    // checked against the plan itself.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let listed = succeed(tracekit().args(["step", "tasks"]).arg(plan));
    let listed = String::from_utf8(listed.stdout).unwrap();
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(listed.lines().count(), stages.len(), "{listed}");
    for (line, stage) in listed.lines().zip(stages) {
        let (name, tasks) = line.split_once(' ').unwrap();
        let tasks: usize = tasks.parse().unwrap();
        assert_eq!(name, stage["name"].as_str().unwrap());
        assert_eq!(tasks, stage["tasks"].as_array().unwrap().len());
        let one = succeed(tracekit().args(["step", "tasks"]).arg(plan).arg(name));
        assert_eq!(String::from_utf8(one.stdout).unwrap(), format!("{tasks}\n"));
        let list: Vec<String> = (0..tasks).rev().map(|n| n.to_string()).collect();
        let script = format!(
            "printf '%s\\n' {} | xargs -P 2 -I{{}} {} step task {} {} {{}}",
            list.join(" "),
            env!("CARGO_BIN_EXE_tracekit"),
            plan.display(),
            name
        );
        let x = run(std::process::Command::new("sh").args(["-c", &script]));
        assert_eq!(x.status.code(), Some(0), "{}", stderr(&x));
    }
    run(tracekit().args(["step", "finish"]).arg(plan))
}

#[test]
fn info_by_xargs_equals_info_on_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = set(dir.path());
    for args in [
        &["info"][..],
        &["info", "--json"],
        &["info", "--json", "--hash", "sha256"],
    ] {
        let one = run(tracekit().args(args).arg("-q").args(&inputs));
        assert_eq!(one.status.code(), Some(1), "{}", stderr(&one));
        for shards in [0, 1, 4] {
            let plan = dir.path().join(format!("p{shards}-{}.json", args.len()));
            let got = by_xargs(&plan, shards, args, &inputs);
            assert_eq!(got.stdout, one.stdout, "{args:?} shards {shards}");
            assert_eq!(got.status.code(), one.status.code(), "{}", stderr(&got));
            assert!(
                stderr(&got).contains("passed over 1 file(s)"),
                "{}",
                stderr(&got)
            );
        }
    }
}

#[test]
fn tasks_commit_once_and_the_finish_waits_for_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = set(dir.path());
    let plan = dir.path().join("run.json");
    succeed(
        tracekit()
            .args(["step", "plan", "-o"])
            .arg(&plan)
            .args(["--shards", "3", "info", "--json"])
            .args(&inputs),
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(v["stages"][0]["tasks"].as_array().unwrap().len(), 3);
    assert_eq!(v["inputs"].as_array().unwrap().len(), 9, "{v}");
    // A stage the plan does not have is refused by name, not counted as none.
    let none = run(tracekit().args(["step", "tasks"]).arg(&plan).arg("reduce"));
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("the plan has no stage \"reduce\""),
        "{}",
        stderr(&none)
    );
    // Not every task has committed: the finish says which, and prints nothing.
    succeed(
        tracekit()
            .args(["step", "task"])
            .arg(&plan)
            .args(["map", "1"]),
    );
    let early = run(tracekit().args(["step", "finish"]).arg(&plan));
    assert_ne!(early.status.code(), Some(0));
    assert!(early.stdout.is_empty());
    assert!(
        stderr(&early).contains("2 task(s) have not committed: map 0, map 2"),
        "{}",
        stderr(&early)
    );
    // A task run again does nothing: its committed result stays as it was.
    let work = dir.path().join("run.json.d");
    let result = work.join("map-000001.json");
    let before = (
        std::fs::read(&result).unwrap(),
        std::fs::metadata(&result).unwrap().modified().unwrap(),
    );
    let again = succeed(
        tracekit()
            .args(["step", "task"])
            .arg(&plan)
            .args(["map", "1"]),
    );
    assert!(stderr(&again).contains("already committed"));
    assert_eq!(
        before,
        (
            std::fs::read(&result).unwrap(),
            std::fs::metadata(&result).unwrap().modified().unwrap()
        )
    );
    for n in ["0", "2"] {
        succeed(
            tracekit()
                .args(["step", "task"])
                .arg(&plan)
                .args(["map", n]),
        );
    }
    let names: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        3,
        "only committed results, no temporary files: {names:?}"
    );
    let done = run(tracekit().args(["step", "finish"]).arg(&plan));
    let one = run(tracekit().args(["info", "--json", "-q"]).args(&inputs));
    assert_eq!(done.stdout, one.stdout);
    // Out of range, or a plan of something else: refused.
    let bad = run(tracekit()
        .args(["step", "task"])
        .arg(&plan)
        .args(["map", "3"]));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let text = std::fs::read_to_string(&plan).unwrap();
    for (bad_plan, why) in [
        (
            text.replace("\"tracekit ", "\"tracekit 0.0.1-"),
            "make the plan again",
        ),
        (
            "{\"plan_version\": 1}".to_string(),
            "a plan of an unknown tool",
        ),
        (
            text.replace("\"stages\"", "\"stagez\""),
            "not a tracekit plan",
        ),
    ] {
        std::fs::write(&plan, bad_plan).unwrap();
        let bad = run(tracekit().args(["step", "finish"]).arg(&plan));
        assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
        assert!(stderr(&bad).contains(why), "{why}: {}", stderr(&bad));
    }
}

#[test]
fn commands_without_distributed_steps_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.json");
    let hs = testdata("handshake.pcap");
    let hs = hs.to_str().unwrap();
    for (args, why) in [
        (
            vec!["merge", "-o", "x.pcap", hs],
            "cannot be distributed yet",
        ),
        (
            vec!["info", "--filter", "tcp", hs],
            "has no distributed reduce step yet",
        ),
        (vec!["info", "-"], "standard input"),
        (
            vec!["split", "--by", "host", "-o", "out", hs],
            "--by host cannot be distributed yet",
        ),
        (
            vec!["split", "--compress", "gzip", "-o", "out", hs],
            "split --compress cannot be distributed yet",
        ),
        (
            vec!["split", "--filter", "tcp", "-o", "out", hs],
            "split with a selection",
        ),
        (
            vec![
                "extract",
                "--after",
                "2023-11-14T00:00:00Z",
                "-o",
                "x.pcap",
                hs,
            ],
            "use tracekit index, then extract --index",
        ),
        (
            vec!["extract", "--filter", "tcp", "-o", "-", hs],
            "standard output",
        ),
        (
            vec!["flows", "--filter", "tcp", hs],
            "flows with a selection",
        ),
    ] {
        let out = run(tracekit()
            .args(["step", "plan", "-o"])
            .arg(&plan)
            .args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
        assert!(!plan.exists());
    }
}

#[test]
fn anonymize_by_xargs_equals_anonymize_on_one_machine_and_the_key_stays_in_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = set(dir.path());
    // Two inputs of one name: the second is left out, on one machine as in steps.
    std::fs::copy(
        testdata("handshake.pcap"),
        dir.path().join("set/more/handshake.pcap"),
    )
    .unwrap();
    inputs.push(testdata("reset-client.pcapng"));
    let key = dir.path().join("k.key");
    succeed(tracekit().args(["keygen", "-o"]).arg(&key));
    let key_hex = std::fs::read_to_string(&key).unwrap().trim().to_string();
    let args = |out: &str| -> Vec<String> {
        let d = dir.path().display();
        vec![
            "anonymize".into(),
            "--key-file".into(),
            key.display().to_string(),
            "--verify".into(),
            "--payload".into(),
            "keep".into(),
            "-o".into(),
            format!("{d}/{out}"),
            "--mapping-out".into(),
            format!("{d}/{out}.csv"),
        ]
    };
    let one = run(tracekit().args(args("one")).args(&inputs));
    for shards in [0, 3] {
        let out = format!("steps{shards}");
        let plan = dir.path().join(format!("a{shards}.json"));
        let a = args(&out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let got = by_xargs(&plan, shards, &a, &inputs);
        assert_eq!(got.status.code(), one.status.code(), "{}", stderr(&got));
        assert_eq!(
            files_of(&dir.path().join(&out)),
            files_of(&dir.path().join("one")),
            "shards {shards}"
        );
        assert_eq!(
            std::fs::read(dir.path().join(format!("{out}.csv"))).unwrap(),
            std::fs::read(dir.path().join("one.csv")).unwrap()
        );
        assert_eq!(stderr(&got).replace(&out, "one"), stderr(&one));
        // The plan names the key file and its fingerprint, never the key; so do the results.
        let text = std::fs::read_to_string(&plan).unwrap();
        assert!(text.contains("\"key\": \""), "{text}");
        assert!(!text.to_lowercase().contains(&key_hex.to_lowercase()));
        for (_, bytes) in files_of(&dir.path().join(format!("a{shards}.json.d"))) {
            assert!(!String::from_utf8_lossy(&bytes).contains(&key_hex));
        }
    }
    assert!(stderr(&one).contains("left out"), "{}", stderr(&one));
    assert!(
        stderr(&one).contains("leak check passed"),
        "{}",
        stderr(&one)
    );

    // A task that reads another key than the plan's is refused, and commits nothing.
    let plan = dir.path().join("other.json");
    let a = args("other");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    succeed(
        tracekit()
            .args(["step", "plan", "-o"])
            .arg(&plan)
            .args(&a)
            .args(&inputs),
    );
    std::fs::remove_file(&key).unwrap();
    succeed(tracekit().args(["keygen", "-o"]).arg(&key));
    let bad = run(tracekit()
        .args(["step", "task"])
        .arg(&plan)
        .args(["map", "0"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("is not the plan's"),
        "{}",
        stderr(&bad)
    );
    assert!(!dir.path().join("other.json.d/map-000000.json").exists());
}

/// Relative paths in the command mean what they mean where the plan was made, wherever the
/// tasks and the finish run from.
#[test]
fn relative_paths_mean_what_they_mean_where_the_plan_was_made() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for name in ["handshake.pcap", "mixed.pcapng"] {
        std::fs::copy(testdata(name), dir.path().join("in").join(name)).unwrap();
    }
    succeed(
        tracekit()
            .current_dir(dir.path())
            .args(["keygen", "-o", "k.key"]),
    );
    let args = |out: &str| {
        vec![
            "anonymize".to_string(),
            "--key-file".into(),
            "k.key".into(),
            "-o".into(),
            out.into(),
            "--mapping-out".into(),
            format!("{out}.csv"),
            "in".into(),
        ]
    };
    let one = succeed(tracekit().current_dir(dir.path()).args(args("one")));
    succeed(
        tracekit()
            .current_dir(dir.path())
            .args(["step", "plan", "-o", "run.json"])
            .args(args("many")),
    );
    let plan = dir.path().join("run.json");
    for n in ["0", "1"] {
        succeed(
            tracekit()
                .current_dir("/")
                .args(["step", "task"])
                .arg(&plan)
                .args(["map", n]),
        );
    }
    let many = succeed(
        tracekit()
            .current_dir("/")
            .args(["step", "finish"])
            .arg(&plan),
    );
    // The messages name the files as the command was given them.
    assert_eq!(stderr(&many).replace("many", "one"), stderr(&one));
    assert!(
        stderr(&one).contains("in/handshake.pcap -> one/handshake.pcap"),
        "{}",
        stderr(&one)
    );
    assert_eq!(
        files_of(&dir.path().join("many")),
        files_of(&dir.path().join("one"))
    );
    assert_eq!(
        std::fs::read(dir.path().join("many.csv")).unwrap(),
        std::fs::read(dir.path().join("one.csv")).unwrap()
    );
    assert!(!std::path::Path::new("/many.csv").exists());
}

/// `split ARGS… -o DIR --index DIR.csv INPUTS…` on one machine and by steps (plan with
/// `plan_args`): the same files with the same bytes, the same index, report and exit status.
fn split_both_ways(dir: &Path, n: usize, plan_args: &[&str], args: &[&str], inputs: &[PathBuf]) {
    let (one, many) = (dir.join(format!("one-{n}")), dir.join(format!("many-{n}")));
    let index = |d: &Path| d.with_extension("csv");
    let single = run(tracekit()
        .args(["split", "-q"])
        .args(args)
        .arg("-o")
        .arg(&one)
        .arg("--index")
        .arg(index(&one))
        .args(inputs));
    let mut with_outputs: Vec<&str> = vec!["split", "-q"];
    with_outputs.extend(args);
    let (m, mi) = (
        many.display().to_string(),
        index(&many).display().to_string(),
    );
    with_outputs.extend(["-o", &m, "--index", &mi]);
    let stepped = planned_by_xargs(
        &dir.join(format!("plan-{n}.json")),
        plan_args,
        &with_outputs,
        inputs,
    );
    let what = format!("{plan_args:?} {args:?}");
    assert_eq!(
        stepped.status.code(),
        single.status.code(),
        "{what}: {}",
        stderr(&stepped)
    );
    assert_eq!(
        stderr(&stepped).replace(&m, "DIR"),
        stderr(&single).replace(&one.display().to_string(), "DIR"),
        "{what}"
    );
    let (a, b) = (files_of(&one), files_of(&many));
    assert!(a.len() > 10, "{what}: {} outputs", a.len());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}"
    );
    assert!(a == b, "{what}: same names, other bytes");
    assert_eq!(
        std::fs::read(index(&one)).unwrap(),
        std::fs::read(index(&many)).unwrap(),
        "{what}"
    );
}

#[test]
fn split_by_stream_in_partitions_equals_split_on_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    // Conversations spanning files, a reused tuple, fragments before their first fragment,
    // ICMP errors before the conversation they quote, VXLAN (testdata/make_rotated.py).
    let rotated = vec![testdata("rotated")];
    let mut n = 0;
    for args in [
        &["--by", "stream"][..],
        &["--by", "stream", "--icmp-with-flow"],
        &["--by", "stream", "--inner"],
        &["--by", "stream", "--inner", "--icmp-with-flow", "--vlan"],
        &["--name", "{n}-{proto}-{id}-{start}", "--format", "pcapng"],
    ] {
        for (shards, partitions) in [("1", "1"), ("3", "2"), ("9", "5"), ("4", "11")] {
            n += 1;
            split_both_ways(
                dir.path(),
                n,
                &["--shards", shards, "--partitions", partitions],
                args,
                &rotated,
            );
        }
    }
    if !tracekit_testutil::has_corpus() {
        return;
    }
    // Every reader's oddities, damaged files, link types, tunnels, fragments.
    let corpus = vec![tracekit_testutil::corpus_dir()];
    for args in [&["--by", "stream"][..], &["--icmp-with-flow", "--inner"]] {
        for (shards, partitions) in [("5", "3"), ("16", "7")] {
            n += 1;
            split_both_ways(
                dir.path(),
                n,
                &["--shards", shards, "--partitions", partitions],
                args,
                &corpus,
            );
        }
    }
}

#[test]
fn a_split_finishes_once_and_reduces_wait_for_every_map() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.json");
    let out = dir.path().join("out");
    succeed(
        tracekit()
            .args(["step", "plan", "-o"])
            .arg(&plan)
            .args(["--shards", "3", "--partitions", "2", "split", "-o"])
            .arg(&out)
            .arg(testdata("rotated")),
    );
    let task = |stage: &str, n: &str| {
        run(tracekit()
            .args(["step", "task"])
            .arg(&plan)
            .args([stage, n]))
    };
    assert_eq!(task("map", "0").status.code(), Some(0));
    let early = task("reduce", "0");
    assert_eq!(early.status.code(), Some(2));
    assert!(
        stderr(&early).contains("map task 1 has not committed"),
        "{}",
        stderr(&early)
    );
    for n in ["1", "2", "2"] {
        assert_eq!(task("map", n).status.code(), Some(0));
    }
    // A reduce run twice (a retry) leaves one result; the finish uses what was committed.
    for n in ["0", "1", "1"] {
        assert_eq!(task("reduce", n).status.code(), Some(0), "{n}");
    }
    succeed(tracekit().args(["step", "finish"]).arg(&plan));
    assert!(files_of(&out).len() > 10);
    let again = run(tracekit().args(["step", "finish"]).arg(&plan));
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("finished already"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn analyze_batch_by_steps_equals_analyze_batch_on_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    // The same two directories under two roots: the summaries name the files relatively.
    for root in ["one", "many"] {
        let (a, b) = (
            dir.path().join(root).join("A"),
            dir.path().join(root).join("B"),
        );
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for lab in ["firewall", "nat", "reset", "clamp", "synproxy", "router"] {
            std::fs::copy(
                testdata(&format!("{lab}-client.pcapng")),
                a.join(format!("{lab}-c.pcapng")),
            )
            .unwrap();
            std::fs::copy(
                testdata(&format!("{lab}-server.pcapng")),
                b.join(format!("{lab}-s.pcapng")),
            )
            .unwrap();
        }
        // Without a partner: a file that shares nothing, and one that is not a capture.
        std::fs::copy(testdata("handshake.pcap"), a.join("lone.pcap")).unwrap();
        std::fs::write(b.join("notes.txt"), "not a capture\n").unwrap();
    }
    let args = ["analyze", "--batch", "A", "B", "-o", "out"];
    let one = run(tracekit().current_dir(dir.path().join("one")).args(args));
    assert_eq!(one.status.code(), Some(1), "{}", stderr(&one));
    let many = dir.path().join("many");
    for shards in ["1", "4", "13"] {
        let _ = std::fs::remove_dir_all(many.join("out"));
        succeed(
            tracekit()
                .current_dir(&many)
                .args(["step", "plan", "-o", "p.json", "--shards", shards])
                .args(args),
        );
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(many.join("p.json")).unwrap()).unwrap();
        let stages: Vec<(String, usize)> = v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["tasks"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(stages[0].0, "sketch");
        assert_eq!(stages[1].0, "pairs");
        if shards == "1" {
            // The pairs stage before the sketches: refused, naming what is missing.
            let early = run(tracekit()
                .current_dir(&many)
                .args(["step", "task", "p.json", "pairs", "0"]));
            assert_eq!(early.status.code(), Some(2));
            assert!(
                stderr(&early).contains("sketch task 0 has not committed"),
                "{}",
                stderr(&early)
            );
        }
        for (stage, tasks) in &stages {
            for n in (0..*tasks).rev() {
                succeed(tracekit().current_dir(&many).args([
                    "step",
                    "task",
                    "p.json",
                    stage,
                    &n.to_string(),
                ]));
            }
        }
        let got = run(tracekit()
            .current_dir(&many)
            .args(["step", "finish", "p.json"]));
        assert_eq!(got.status.code(), one.status.code(), "{}", stderr(&got));
        assert_eq!(stdout(&got), stdout(&one), "shards {shards}");
        assert_eq!(stderr(&got), stderr(&one), "shards {shards}");
        let (a, b) = (
            files_of(&dir.path().join("one/out")),
            files_of(&many.join("out")),
        );
        assert_eq!(
            a.len(),
            6 * 3 + 3,
            "a report of three files per pair, the summaries"
        );
        assert!(a == b, "shards {shards}");
        std::fs::remove_file(many.join("p.json")).unwrap();
        std::fs::remove_dir_all(many.join("p.json.d")).unwrap();
    }
}

#[test]
fn flows_in_partitions_equals_flows_on_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    let rotated = vec![testdata("rotated")];
    for (n, args) in [
        &["flows"][..],
        &["flows", "--format", "csv"],
        &["flows", "--top", "9", "--by", "duration"],
    ]
    .into_iter()
    .enumerate()
    {
        let one = run(tracekit().args(args).args(&rotated));
        assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
        for (shards, partitions) in [("1", "1"), ("3", "2"), ("9", "5"), ("4", "11")] {
            let plan = dir.path().join(format!("f{n}-{shards}-{partitions}.json"));
            let got = planned_by_xargs(
                &plan,
                &["--shards", shards, "--partitions", partitions],
                args,
                &rotated,
            );
            let what = format!("{args:?} {shards}/{partitions}");
            assert_eq!(got.status.code(), Some(0), "{what}: {}", stderr(&got));
            assert_eq!(stdout(&got), stdout(&one), "{what}");
            assert_eq!(stderr(&got), stderr(&one), "{what}");
        }
    }
}

#[test]
fn a_flows_reduce_result_naming_a_file_the_plan_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.json");
    let got = planned_by_xargs(
        &plan,
        &["--shards", "2", "--partitions", "1"],
        &["flows"],
        &[testdata("rotated")],
    );
    assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));
    // The rows name their files by number: one past the plan's inputs.
    let result = dir.path().join("p.json.d/reduce-000000.json");
    let text = std::fs::read_to_string(&result).unwrap();
    let inputs = std::fs::read_dir(testdata("rotated")).unwrap().count();
    assert!(text.contains("\"files\":[0"), "{text:.300}");
    std::fs::write(
        &result,
        text.replacen("\"files\":[0", &format!("\"files\":[{inputs}"), 1),
    )
    .unwrap();
    let got = run(tracekit().args(["step", "finish"]).arg(&plan));
    assert_eq!(got.status.code(), Some(2), "{}", stderr(&got));
    assert!(
        stderr(&got).contains("reduce task 0's result names a file the plan does not have"),
        "{}",
        stderr(&got)
    );
    assert!(got.stdout.is_empty());
}

#[test]
fn a_set_whose_files_overlap_in_time_is_refused_with_status_3() {
    let dir = tempfile::tempdir().unwrap();
    // The same files in reverse time order: flows interleaves them, file after file does not.
    let set = dir.path().join("set");
    std::fs::create_dir(&set).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(testdata("rotated"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for (i, f) in files.iter().rev().enumerate() {
        std::fs::copy(f, set.join(format!("{i:02}.pcap"))).unwrap();
    }
    let got = planned_by_xargs(
        &dir.path().join("p.json"),
        &["--shards", "3"],
        &["flows"],
        &[set],
    );
    assert_eq!(got.status.code(), Some(3), "{}", stderr(&got));
    assert!(
        stderr(&got).contains("do not follow one another")
            && stderr(&got).contains("on one machine"),
        "{}",
        stderr(&got)
    );
    assert!(got.stdout.is_empty());
}

/// `step plan PLAN_ARGS… ARGS…` run from `dir`, every stage's tasks in reverse order, then the
/// finish: its output.
fn stepped_in(dir: &Path, plan_args: &[&str], args: &[&str]) -> std::process::Output {
    let _ = std::fs::remove_file(dir.join("p.json"));
    let _ = std::fs::remove_dir_all(dir.join("p.json.d"));
    succeed(
        tracekit()
            .current_dir(dir)
            .args(["step", "plan", "-o", "p.json"])
            .args(plan_args)
            .args(args),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("p.json")).unwrap()).unwrap();
    for stage in v["stages"].as_array().unwrap() {
        let name = stage["name"].as_str().unwrap();
        for n in (0..stage["tasks"].as_array().unwrap().len()).rev() {
            succeed(tracekit().current_dir(dir).args([
                "step",
                "task",
                "p.json",
                name,
                &n.to_string(),
            ]));
        }
    }
    run(tracekit()
        .current_dir(dir)
        .args(["step", "finish", "p.json"]))
}

#[test]
fn index_by_steps_equals_index_on_one_machine_also_when_the_set_grows_or_a_file_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(testdata("rotated"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    rotated.sort();
    std::fs::create_dir(root.join("set")).unwrap();
    let add = |files: &[PathBuf]| {
        for f in files {
            std::fs::copy(f, root.join("set").join(f.file_name().unwrap())).unwrap();
        }
    };
    // The index records the captures' absolute paths: both are made in the same place, `ix`,
    // each kept aside (ix-one, ix-many) while the other is brought up to date.
    let args = ["index", "-q", "-o", "ix", "set"];
    let in_place = |name: &str, f: &dyn Fn() -> std::process::Output| {
        let aside = root.join(name);
        if aside.exists() {
            std::fs::rename(&aside, root.join("ix")).unwrap();
        }
        let out = f();
        std::fs::rename(root.join("ix"), &aside).unwrap();
        out
    };
    // A distributed run saves no flow-table state (its table comes from the partitions).
    let tree = |d: &Path| {
        let mut files = crate::index::tree(d);
        files.retain(|f| f.0 != tracekit_index::STATE);
        files
    };
    let compare = |what: &str| {
        let single = in_place("ix-one", &|| run(tracekit().current_dir(root).args(args)));
        let stepped = in_place("ix-many", &|| {
            stepped_in(root, &["--shards", "3", "--partitions", "4"], &args)
        });
        assert_eq!(
            stepped.status.code(),
            single.status.code(),
            "{what}: {}",
            stderr(&stepped)
        );
        // The same but for how the table was made and the index's size (the state).
        let said = |o: &std::process::Output| -> String {
            let text = stderr(o);
            let (Some(from), Some(to)) = (text.find("; flow table "), text.find(" in ix")) else {
                return text;
            };
            format!("{}{}", &text[..from], &text[to..])
        };
        assert_eq!(said(&stepped), said(&single), "{what}");
        let flows = |o: &std::process::Output| {
            let text = stderr(o);
            text.find(" flows)").map(|i| {
                let head = &text[..i];
                head[head.rfind('(').unwrap()..].to_string()
            })
        };
        assert_eq!(flows(&stepped), flows(&single), "{what}");
        assert!(flows(&single).is_some(), "{what}: {}", stderr(&single));
        let (a, b) = (tree(&root.join("ix-one")), tree(&root.join("ix-many")));
        assert!(a.len() > 3, "{what}");
        assert_eq!(
            a.iter().map(|f| &f.0).collect::<Vec<_>>(),
            b.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{what}"
        );
        assert!(a == b, "{what}: the same files, other bytes");
        single
    };
    add(&rotated[..6]);
    let first = compare("six files");
    assert!(stderr(&first).contains("6 indexed"), "{}", stderr(&first));
    add(&rotated[6..]);
    let grown = compare("three more");
    assert!(
        stderr(&grown).contains("3 indexed (0 changed since), 6 unchanged"),
        "{}",
        stderr(&grown)
    );
    let last = root.join("set").join(rotated[8].file_name().unwrap());
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() - 100]).unwrap();
    let cut = compare("the last one cut");
    assert!(stderr(&cut).contains("1 changed since"), "{}", stderr(&cut));
    // Queries from the index made by steps answer as from the captures.
    std::fs::rename(root.join("ix-many"), root.join("ix")).unwrap();
    let from_index = run(tracekit()
        .current_dir(root)
        .args(["flows", "--index", "ix"]));
    let from_captures = run(tracekit().current_dir(root).args(["flows", "set"]));
    // (The index names files by their absolute paths.)
    let absolute = format!("{}/", root.display());
    let rows = String::from_utf8_lossy(&from_index.stdout).replace(&absolute, "");
    assert!(rows.lines().count() > 100);
    assert!(
        rows == String::from_utf8_lossy(&from_captures.stdout),
        "flows --index differs"
    );
}

#[test]
fn extract_with_a_filter_by_steps_equals_extract_on_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    // The rotated set, and its files renamed into reverse time order (merged by time).
    let reversed = dir.path().join("reversed");
    std::fs::create_dir(&reversed).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata("rotated"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for (i, f) in files.iter().rev().enumerate() {
        std::fs::copy(f, reversed.join(format!("{i:02}.pcap"))).unwrap();
    }
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "192.0.2.7\n198.51.100.96/30\n").unwrap();
    let hosts = hosts.display().to_string();
    let mut n = 0;
    for (set, selection, out) in [
        (testdata("rotated"), vec!["--filter", "udp"], "x.pcap"),
        (
            testdata("rotated"),
            vec!["--filter", "tcp port 443"],
            "x.pcapng",
        ),
        (
            reversed.clone(),
            vec!["--hosts-file", hosts.as_str()],
            "x.pcap.gz",
        ),
        (
            reversed.clone(),
            vec!["--filter", "icmp or arp"],
            "x.pcap.zst",
        ),
    ] {
        for shards in ["1", "3", "9"] {
            n += 1;
            let (one, many) = (
                dir.path().join(format!("one-{n}-{out}")),
                dir.path().join(format!("many-{n}-{out}")),
            );
            let single = run(tracekit()
                .arg("extract")
                .args(&selection)
                .arg("-o")
                .arg(&one)
                .arg(&set));
            let m = many.display().to_string();
            let mut args = vec!["extract"];
            args.extend(&selection);
            args.extend(["-o", m.as_str()]);
            let got = planned_by_xargs(
                &dir.path().join(format!("e{n}.json")),
                &["--shards", shards],
                &args,
                std::slice::from_ref(&set),
            );
            let what = format!("{selection:?} {out} shards {shards}");
            assert_eq!(
                got.status.code(),
                single.status.code(),
                "{what}: {}",
                stderr(&got)
            );
            assert_eq!(
                stderr(&got).replace(&m, "OUT"),
                stderr(&single).replace(&one.display().to_string(), "OUT"),
                "{what}"
            );
            let bytes = std::fs::read(&one).unwrap();
            assert!(bytes.len() > 100, "{what}");
            assert!(
                bytes == std::fs::read(&many).unwrap(),
                "{what}: other bytes"
            );
        }
    }
    // pcapng inputs: the single run selects them another way; the finish says so (status 3).
    let got = planned_by_xargs(
        &dir.path().join("ng.json"),
        &["--shards", "2"],
        &[
            "extract",
            "--filter",
            "tcp",
            "-o",
            &dir.path().join("ng.pcapng").display().to_string(),
        ],
        &[
            testdata("firewall-client.pcapng"),
            testdata("handshake.pcap"),
        ],
    );
    assert_eq!(got.status.code(), Some(3), "{}", stderr(&got));
    assert!(stderr(&got).contains("on one machine"), "{}", stderr(&got));
}
