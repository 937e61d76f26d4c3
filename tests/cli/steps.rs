//! `tracekit step` (issue 27): a plan, its tasks run by `xargs -P` in any order (also twice),
//! and the finish print what the command prints on one machine, byte for byte.

use std::path::{Path, PathBuf};

use crate::split::files_of;
use crate::{run, stderr, succeed, testdata, tracekit};

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
    succeed(
        tracekit()
            .args(["step", "plan", "-o"])
            .arg(plan)
            .args(["--shards", &shards.to_string()])
            .args(args)
            .args(inputs),
    );
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
    let list: Vec<String> = (0..tasks).rev().map(|n| n.to_string()).collect();
    let script = format!(
        "printf '%s\\n' {} | xargs -P 2 -I{{}} {} step task {} map {{}}",
        list.join(" "),
        env!("CARGO_BIN_EXE_tracekit"),
        plan.display()
    );
    let x = run(std::process::Command::new("sh").args(["-c", &script]));
    assert_eq!(x.status.code(), Some(0), "{}", stderr(&x));
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
