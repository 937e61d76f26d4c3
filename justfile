# List the recipes.
default:
    @just --list

# Build the release binaries.
build:
    cargo build --release

# Run the tests (installs tshark when missing).
test:
    scripts/test

# Format check and clippy, as CI does.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# What CI runs.
ci:
    .ci/run

# Analyze the bundled demo pair (the firewall that closes TLS after the Server Hello).
demo:
    cargo run --release --quiet -- analyze testdata/firewall-client.pcapng testdata/firewall-server.pcapng

# Benchmark against capinfos and cat on a generated multi-GB capture (SIZE_GB, default 2).
bench size_gb="2":
    bench/run.sh {{size_gb}}
    bench/merge.sh
    bench/analyze.sh
    bench/anonymize.sh
    bench/select.sh
    bench/analyze-sets.sh
    bench/index.sh
    bench/index-day.sh
    bench/compress.sh

# Split about a million streams under the default open-file limit (scale, conservation).
bench-scale:
    bench/split-scale.sh

# Fuzz each target for SECONDS (needs cargo-fuzz; not part of CI).
fuzz seconds="120":
    scripts/fuzz {{seconds}}

# Rebuild testdata/ from its generator script.
testdata:
    python3 testdata/make_testdata.py
    python3 testdata/make_rotated.py
