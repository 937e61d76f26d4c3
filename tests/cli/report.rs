//! The HTML page and SVG ladder of `tracekit analyze --html/--svg` on the bundled demo pair:
//! their structure, and the page as headless Chromium renders it (DOM and a screenshot).

use std::path::Path;

use crate::{run, stderr, testdata, tracekit};

fn demo(dir: &Path) -> (String, String) {
    let (html, svg) = (dir.join("demo.html"), dir.join("demo.svg"));
    let o = run(tracekit()
        .arg("analyze")
        .arg("--html")
        .arg(&html)
        .arg("--svg")
        .arg(&svg)
        .arg(testdata("firewall-client.pcapng"))
        .arg(testdata("firewall-server.pcapng")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (
        std::fs::read_to_string(html).unwrap(),
        std::fs::read_to_string(svg).unwrap(),
    )
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn the_demo_page_has_verdict_topology_ladder_evidence_and_drawing() {
    let dir = tempfile::tempdir().unwrap();
    let (html, svg) = demo(dir.path());
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: no external resources.
    for external in ["src=\"http", "href=\"http", "<link ", "@import"] {
        assert!(!html.contains(external), "{external}");
    }
    assert!(html.contains("terminated TCP transparently"));
    assert!(
        html.contains("after the server&#39;s Server Hello")
            || html.contains("after the server's Server Hello")
    );
    assert!(html.contains("capture A: firewall-client.pcapng"));
    assert!(html.contains("capture B: firewall-server.pcapng"));
    assert!(html.contains("Check Point Software Technologies"));
    assert!(
        html.contains("Check Point box"),
        "the simple drawing names the box"
    );
    // One section per connection, failed ones first.
    assert_eq!(count(&html, "<section id=\"conn"), 3);
    // The first connection's ladder, as the SVG file holds it: 19 packets, the Server Hello
    // dropped, the FIN and RSTs injected, packets joined across the lane, changes marked.
    assert!(svg.starts_with("<svg"));
    assert_eq!(count(&svg, "class=\"arrow"), 19, "{svg}");
    assert_eq!(count(&svg, "class=\"arrow dropped\""), 3);
    assert_eq!(count(&svg, "class=\"arrow injected\""), 5);
    assert!(svg.contains("#18 PSH, ACK · Server Hello ✗ dropped"));
    assert!(svg.contains("#20 FIN, ACK ✗ injected"));
    assert_eq!(
        count(&svg, "class=\"join\""),
        3,
        "SYN, SYN/ACK and Client Hello seen at both points"
    );
    assert!(
        svg.contains("changed: TTL 128 → 255, IP ID, sequence numbers, ECN, window scale 10 → 7")
    );
    assert!(html.contains(&svg), "the page embeds the same ladder");
    // Evidence with a filter and a copy button per side where frames exist.
    assert!(html.contains("<code>fin-faster-than-rtt</code>"));
    assert!(html.contains("data-filter=\"frame.number in {18 20}\""));
    // Readable without colour: every red mark has a word.
    assert_eq!(count(&svg, "stroke=\"#b00020\""), count(&svg, "✗ "));
}

/// The structure of the demo ladder: one line per element, numbers and text as drawn. A change
/// to the drawing shows here as a reviewable diff (`cargo insta review`).
#[test]
fn snapshot_of_the_demo_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let (html, svg) = demo(dir.path());
    insta::assert_snapshot!(svg.replace("><", ">\n<"));
    // The page's outline: headings and sections in order.
    let outline: Vec<&str> = html
        .split('<')
        .filter(|t| {
            t.starts_with("h1")
                || t.starts_with("h2")
                || t.starts_with("h3")
                || t.starts_with("section")
        })
        .map(|t| t.split_once('>').map_or(t, |(_, text)| text))
        .collect();
    insta::assert_snapshot!("demo_page_outline", outline.join("\n"));
}

#[test]
fn headless_chromium_renders_the_demo_page() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            run(std::process::Command::new("which").arg(c))
                .status
                .success()
        })
    else {
        panic!("chromium is missing: scripts/test installs it (apt-get install chromium)");
    };
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let page = format!("file://{}", dir.path().join("demo.html").display());
    let browser = |extra: &[&str]| {
        run(std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg("--disable-background-networking")
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .args(extra)
            .arg(&page))
    };
    let dom = browser(&["--dump-dom"]);
    assert!(dom.status.success(), "{}", stderr(&dom));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("terminated TCP transparently"), "{dom}");
    assert!(dom.contains("capture A: firewall-client.pcapng"));
    assert!(dom.contains("capture B: firewall-server.pcapng"));
    assert!(
        count(&dom, "class=\"arrow") >= 19 * 2,
        "both failed connections' arrows"
    );
    let shot = dir.path().join("demo.png");
    let o = browser(&[
        "--hide-scrollbars",
        "--window-size=1200,2400",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 50_000,
        "a page with content: {} bytes",
        png.len()
    );
}
