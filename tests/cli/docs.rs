//! `tracekit completions` and `tracekit manpages`: the bash completion loads in bash and
//! completes a subcommand and an option; every shell gets a script; `man -l` renders a page
//! of every command.

use crate::{stderr, stdout, succeed, tracekit};

#[test]
fn the_bash_completion_completes_subcommands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tracekit.bash");
    std::fs::write(
        &script,
        succeed(tracekit().args(["completions", "bash"])).stdout,
    )
    .unwrap();
    let complete = |words: &str| -> String {
        let n = words.split(' ').count() - 1;
        let o = succeed(std::process::Command::new("bash").arg("-c").arg(format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD={n}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; \
             _tracekit tracekit \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        )));
        stdout(&o)
    };
    let subcommands = complete("tracekit me");
    assert_eq!(subcommands.trim(), "merge", "{subcommands}");
    let options = complete("tracekit extract --com");
    assert!(options.lines().any(|l| l == "--community-id"), "{options}");
    for (shell, mark) in [
        ("zsh", "#compdef tracekit"),
        ("fish", "complete -c tracekit"),
        ("elvish", "tracekit"),
        ("powershell", "tracekit"),
    ] {
        let o = succeed(tracekit().args(["completions", shell]));
        assert!(stdout(&o).contains(mark), "{shell}");
    }
}

#[test]
fn man_renders_a_page_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = succeed(tracekit().arg("manpages").arg(dir.path()));
    assert!(stderr(&o).contains("pages written"), "{}", stderr(&o));
    for name in [
        "tracekit",
        "info",
        "split",
        "merge",
        "analyze",
        "anonymize",
        "extract",
        "flows",
        "index",
        "keygen",
        "leakcheck",
        "completions",
        "manpages",
    ] {
        let file = if name == "tracekit" {
            "tracekit.1".to_string()
        } else {
            format!("tracekit-{name}.1")
        };
        let page = dir.path().join(&file);
        assert!(page.exists(), "{file}");
        let o = succeed(
            std::process::Command::new("man")
                .env("MANWIDTH", "100")
                .args(["-P", "cat", "-l"])
                .arg(&page),
        );
        let text = stdout(&o);
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{file}: {text}"
        );
    }
    let merge = stdout(&succeed(
        std::process::Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(dir.path().join("tracekit-merge.1")),
    ));
    assert!(
        merge.contains("--output") && merge.contains("time order"),
        "{merge}"
    );
}

/// `scripts/fetch-corpus` (issue 29) puts every capture of corpus/MANIFEST.tsv in place and
/// checks each one's sha256; here from the local corpus (`--from`, the machine has no internet),
/// which takes the same checks: a capture that differs from the manifest is refused by name.
#[test]
fn fetch_corpus_checks_every_capture_against_the_manifest() {
    if !tracekit_testutil::has_corpus() {
        return;
    }
    let script = tracekit_testutil::repo_dir().join("scripts/fetch-corpus");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("corpus");
    let source = tracekit_testutil::corpus_dir();
    let out = succeed(
        std::process::Command::new(&script)
            .arg("--from")
            .arg(&source)
            .arg(&dest),
    );
    let rows = tracekit_testutil::manifest().len();
    assert!(
        stderr(&out).contains(&format!(
            "{rows} captures in {}: 0 already there, {rows} from",
            dest.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), rows + 1);
    // Again: everything is there already.
    let again = succeed(
        std::process::Command::new(&script)
            .arg("--from")
            .arg(&source)
            .arg(&dest),
    );
    assert!(
        stderr(&again).contains(&format!("{rows} already there, 0 from")),
        "{}",
        stderr(&again)
    );
    // A source whose capture differs from the manifest: refused, named, exit 1.
    let mirror = dir.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    for e in std::fs::read_dir(&dest).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), mirror.join(e.file_name())).unwrap();
    }
    let victim = &tracekit_testutil::manifest()[3].file;
    std::fs::write(mirror.join(victim), b"not the capture").unwrap();
    std::fs::write(dest.join(victim), b"damaged too").unwrap();
    let bad = crate::run(
        std::process::Command::new(&script)
            .arg("--from")
            .arg(&mirror)
            .arg(&dest),
    );
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains(&format!("{victim}: sha256 ")),
        "{}",
        stderr(&bad)
    );
    assert!(stderr(&bad).contains("1 failed"), "{}", stderr(&bad));
    assert_eq!(std::fs::read(dest.join(victim)).unwrap(), b"damaged too");
}
