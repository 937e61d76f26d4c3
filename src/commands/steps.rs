//! `tracekit step`: a command cut into deterministic steps that any engine can run (Ray through
//! `tracekit-dist`, `xargs -P`, Slurm job arrays, Kubernetes Indexed Jobs) with the same result
//! as the command run on one machine, byte for byte (issue 27).
//!
//! - `step plan -o PLAN [--shards N] COMMAND ARGS…` decides once what the run needs: the inputs
//!   in the command's own order, the shards (contiguous ranges of them), what the command
//!   passes over, and the stages with their task counts.
//! - `step task PLAN STAGE N` runs task N of a stage: a pure function of (plan, stage, N). It
//!   commits its result atomically under the plan's work directory (written under a temporary
//!   name, then renamed); a task that finds its result committed does nothing, so retried and
//!   duplicated tasks are harmless.
//! - `step finish PLAN` checks that every task committed and writes what the command writes,
//!   through the same code.
//!
//! Commands so far: `info` (one summary per file; a selection, which makes one summary of the
//! set, is refused until it has a reduce step) and `anonymize` (each input on its own; the
//! key stays in its file, which every task reads, and the plan holds only its fingerprint;
//! `--mapping-out` is the union of the tasks' rows, kept private like the file itself).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser as _;
use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::cli::{Cli, Command, StepFinishArgs, StepPlanArgs, StepTaskArgs, StepTasksArgs};
use crate::commands::{
    analyze_steps, anonymize, extract_steps, flows_steps, index_steps, info, split_steps,
};
use tracekit_capture::inputs;

/// The plan's format version: a plan of another version is refused.
const PLAN_VERSION: u32 = 1;

/// What a distributed run needs, decided once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Plan {
    pub plan_version: u32,
    /// The tracekit that made the plan; tasks and the finish refuse a plan of another.
    pub tool: String,
    pub command: String,
    /// The command's arguments as given (after the command's name).
    pub args: Vec<String>,
    /// The directory the plan was made in: tasks and the finish work there, so that relative
    /// paths in `args` name the same files on every machine (shared storage).
    pub cwd: PathBuf,
    /// How the inputs are ordered: the order the single-machine command reads them in.
    pub order: String,
    pub inputs: Vec<Input>,
    /// Files in the directories given that are not captures (the command reports them).
    pub not_captures: Vec<PathBuf>,
    /// Directories that could not be read, and why.
    pub unreadable: Vec<(PathBuf, String)>,
    pub stages: Vec<Stage>,
    /// Where tasks commit their results (beside the plan).
    pub work: PathBuf,
    /// `anonymize`: where each input goes, and the key's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymize: Option<AnonymizePlan>,
    /// `split`: the output format, the partitions, what is skipped before reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<split_steps::SplitPlan>,
    /// `analyze --batch`: where DIR_B's files start among the inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyze_batch: Option<analyze_steps::BatchPlan>,
    /// `flows`: the partitions, what the single run says of inputs it cannot open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<flows_steps::FlowsPlan>,
    /// `index`: the inputs' absolute paths, the partitions of the flow table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<index_steps::IndexPlan>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AnonymizePlan {
    /// Per input: its output, or the message that says why it is left out.
    pub targets: Vec<Result<PathBuf, String>>,
    /// [`tracekit_anonymize::Key::fingerprint`] of the key the plan was made with.
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Input {
    pub path: PathBuf,
    pub size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    /// Per task: the range of `inputs` it reads (half-open; empty for a reduce task, which
    /// reads what the map tasks sent its partition).
    pub tasks: Vec<(usize, usize)>,
}

/// What a map task commits.
#[derive(Debug, Serialize, Deserialize)]
enum Part {
    /// `info`: its files' summaries as printed.
    Info(Vec<info::Rendered>),
    /// `anonymize`: what was said of each of its inputs, and (with `--mapping-out`) the
    /// mapping rows of its inputs.
    Anonymize {
        said: Vec<anonymize::Said>,
        rows: Option<std::collections::BTreeSet<String>>,
    },
    /// `split`: a map task's counts (its packets' places are in files beside it).
    SplitMap(split_steps::Mapped),
    /// `split`: a reduce task's outputs and what it numbered.
    SplitReduce(split_steps::ReducedPart),
    /// `analyze --batch`: a sketch task's sketches (or why a file did not open).
    AnalyzeSketch(Vec<Result<tracekit_analyze::batch::Sketch, String>>),
    /// `analyze --batch`: a pairs task's summary rows (its reports are in the output).
    AnalyzePairs(Vec<tracekit_analyze::batch::SummaryRow>),
    /// `flows`: a map task's files (their packets' places are in a file beside it).
    FlowsMap(flows_steps::Mapped),
    /// `flows` and `index`: a reduce task's flows and what it numbered.
    FlowsReduce(flows_steps::Reduced),
    /// `index`: a map task's files indexed, and its flows map.
    IndexMap(index_steps::Mapped),
    /// `extract`: a map task's selected records (their places).
    ExtractMap(extract_steps::Mapped),
}

fn tool() -> String {
    format!("tracekit {}", env!("CARGO_PKG_VERSION"))
}

/// The command `args` name, parsed as `tracekit` parses it.
fn parse(command: &str, args: &[String]) -> anyhow::Result<Command> {
    let argv = std::iter::once("tracekit".to_string())
        .chain(std::iter::once(command.to_string()))
        .chain(args.iter().cloned());
    Ok(Cli::try_parse_from(argv)?.command)
}

pub fn plan(a: &StepPlanArgs) -> anyhow::Result<Outcome> {
    let Some((command, args)) = a.command.split_first() else {
        bail!(
            "step plan: name the command to plan, e.g. `tracekit step plan -o run.json info DIR`"
        );
    };
    let Decided {
        found,
        ordered,
        anonymize: anonymize_plan,
        mut split,
        analyze_batch,
        flows: mut flows_plan,
        index: mut index_plan,
    } = decide(command, args, a.partitions)?;
    let inputs: Vec<Input> = ordered
        .as_ref()
        .unwrap_or(&found.files)
        .iter()
        .map(|p| Input {
            // As the command names it (its messages and summaries show it so): a relative
            // path is read from the plan's directory.
            path: p.clone(),
            size: std::fs::metadata(p).map_or(0, |m| m.len()),
        })
        .collect();
    let shards = shards(&inputs, a.shards);
    let partitions = partitions(
        shards.len(),
        [
            split.as_mut().map(|sp| &mut sp.partitions),
            flows_plan.as_mut().map(|fp| &mut fp.partitions),
            index_plan.as_mut().map(|ip| &mut ip.partitions),
        ],
    );
    let work = work_dir(&a.output)?;
    let plan = Plan {
        plan_version: PLAN_VERSION,
        tool: tool(),
        command: command.clone(),
        args: args.to_vec(),
        cwd: std::env::current_dir().context("the current directory")?,
        order: if ordered.is_some() {
            "by each file's first packet (the order split reads them in)".into()
        } else {
            "as given, directories walked in name order (the order the command reads them)".into()
        },
        inputs,
        not_captures: found.not_captures.clone(),
        unreadable: found
            .unreadable
            .iter()
            .map(|(p, e)| (p.clone(), e.to_string()))
            .collect(),
        stages: std::iter::once(Stage {
            name: if analyze_batch.is_some() {
                "sketch"
            } else {
                "map"
            }
            .into(),
            tasks: shards.clone(),
        })
        .chain(partitions.map(|p| Stage {
            name: "reduce".into(),
            tasks: vec![(0, 0); p as usize],
        }))
        .chain(analyze_batch.as_ref().map(|_| Stage {
            // As many as the sketch tasks, each a share of the pairs.
            name: "pairs".into(),
            tasks: vec![(0, 0); shards.len()],
        }))
        .collect(),
        work,
        anonymize: anonymize_plan,
        split,
        analyze_batch,
        flows: flows_plan,
        index: index_plan,
    };
    let mut out = tracekit_capture::output::AtomicFile::create(&a.output, &[])?;
    serde_json::to_writer_pretty(&mut out, &plan)?;
    writeln!(out)?;
    out.commit(false)?;
    eprintln!(
        "tracekit step plan: {} {} input(s), stages: {}",
        plan.inputs.len(),
        plan.command,
        plan.stages
            .iter()
            .map(|s| format!("{} ({} tasks)", s.name, s.tasks.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Outcome::Success)
}

/// The partitions of the plan's shuffle, if it has one: as asked, else as many as shards.
fn partitions<const N: usize>(shards: usize, asked: [Option<&mut u32>; N]) -> Option<u32> {
    let mut out = None;
    for p in asked.into_iter().flatten() {
        if *p == 0 {
            *p = u32::try_from(shards.max(1)).unwrap_or(u32::MAX);
        }
        out = Some(*p);
    }
    out
}

/// What a plan holds that depends on its command.
struct Decided {
    found: inputs::Inputs,
    /// The inputs in the command's order when it is not `found`'s.
    ordered: Option<Vec<PathBuf>>,
    anonymize: Option<AnonymizePlan>,
    split: Option<split_steps::SplitPlan>,
    analyze_batch: Option<analyze_steps::BatchPlan>,
    flows: Option<flows_steps::FlowsPlan>,
    index: Option<index_steps::IndexPlan>,
}

/// The inputs and the decisions of `command ARGS…`, or why it cannot be distributed.
fn decide(command: &str, args: &[String], partitions: usize) -> anyhow::Result<Decided> {
    let mut anonymize_plan = None;
    let mut split_plan = None;
    let mut batch_plan = None;
    let mut flows_plan = None;
    let mut index_plan = None;
    let mut ordered = None;
    let found = match parse(command, args)? {
        Command::Extract(ea) => {
            ordered = Some(extract_steps::plan(&ea)?);
            inputs::expand(&ea.inputs)
        }
        Command::Index(ia) => {
            // No --partitions: as many as shards, decided below.
            let (paths, ip) = index_steps::plan(&ia, partitions)?;
            ordered = Some(paths);
            index_plan = Some(ip);
            inputs::expand(&ia.inputs)
        }
        Command::Flows(fa) => {
            // No --partitions: as many as shards, decided below.
            let (paths, fp) = flows_steps::plan(&fa, partitions)?;
            ordered = Some(paths);
            flows_plan = Some(fp);
            inputs::expand(&fa.inputs)
        }
        Command::Analyze(an) => {
            let (found, bp) = analyze_steps::plan(&an)?;
            batch_plan = Some(bp);
            found
        }
        Command::Info(i) => {
            if i.index.is_some() {
                bail!("step plan: info --index reads no capture; run it on one machine");
            }
            let spec = tracekit_select::Spec::try_from(&i.select)?;
            if !spec.is_everything() {
                bail!(
                    "step plan: info with a selection summarizes the set as one capture, which has no distributed reduce step yet; run it on one machine"
                );
            }
            no_stdin(&i.files)?;
            inputs::expand(&i.files)
        }
        Command::Anonymize(an) => {
            no_stdin(&an.inputs)?;
            if an.output.as_os_str() == "-" {
                bail!("step plan: tasks cannot share standard output: give a file or directory");
            }
            let setup = anonymize::Setup::new(&an)?;
            let found = inputs::expand(&an.inputs);
            anonymize_plan = Some(AnonymizePlan {
                targets: anonymize::targets(&an, &found.files)?,
                key: setup.key.fingerprint(),
            });
            found
        }
        Command::Split(sa) => {
            // No --partitions: as many as shards, decided below.
            let (paths, sp) = split_steps::plan(&sa, partitions)?;
            ordered = Some(paths);
            split_plan = Some(sp);
            inputs::expand(&sa.inputs)
        }
        _ => bail!(
            "step plan: {command} cannot be distributed yet (so far: info, anonymize, split --by stream, flows, index, extract, analyze --batch); run it on one machine"
        ),
    };
    Ok(Decided {
        found,
        ordered,
        anonymize: anonymize_plan,
        split: split_plan,
        analyze_batch: batch_plan,
        flows: flows_plan,
        index: index_plan,
    })
}

fn no_stdin(files: &[PathBuf]) -> anyhow::Result<()> {
    if files.iter().any(|f| f.as_os_str() == "-") {
        bail!("step plan: standard input cannot be shared with tasks on other machines");
    }
    Ok(())
}

/// `count` contiguous ranges of `inputs` of about equal bytes (one per input when `count` is
/// 0 or more than the inputs); none when there are no inputs.
fn shards(inputs: &[Input], count: usize) -> Vec<(usize, usize)> {
    let n = inputs.len();
    let count = if count == 0 { n } else { count.min(n) };
    if count == 0 {
        return Vec::new();
    }
    let total: u64 = inputs.iter().map(|i| i.size.max(1)).sum();
    let mut out = Vec::with_capacity(count);
    let (mut start, mut acc) = (0usize, 0u64);
    for (i, input) in inputs.iter().enumerate() {
        acc += input.size.max(1);
        let left_inputs = n - (i + 1);
        let left_shards = count - out.len() - 1;
        // Cut when this shard has its share, or when every input left must start a shard.
        let share = total * (out.len() as u64 + 1) / count as u64;
        if left_shards > 0 && (acc >= share || left_inputs == left_shards) {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    out.push((start, n));
    out
}

/// The work directory of a plan at `plan`: `PLAN.d` beside it, absolute.
fn work_dir(plan: &Path) -> anyhow::Result<PathBuf> {
    let mut name = plan
        .file_name()
        .context("the plan needs a file name")?
        .to_os_string();
    name.push(".d");
    let dir = std::path::absolute(plan.with_file_name(name))?;
    Ok(dir)
}

/// Reads the plan at `path` and enters its directory (see [`Plan::cwd`]).
fn load(path: &Path) -> anyhow::Result<Plan> {
    let path = &std::path::absolute(path)?;
    let bytes =
        std::fs::read(path).with_context(|| format!("reading the plan {}", path.display()))?;
    let not_a_plan = || format!("{}: not a tracekit plan", path.display());
    let v: serde_json::Value = serde_json::from_slice(&bytes).with_context(not_a_plan)?;
    let (version, made_by) = (v["plan_version"].as_u64(), v["tool"].as_str());
    if version != Some(u64::from(PLAN_VERSION)) || made_by != Some(tool().as_str()) {
        bail!(
            "{}: a plan of {} (plan format {}), and this is {} (plan format {PLAN_VERSION}): make the plan again with this tracekit",
            path.display(),
            made_by.unwrap_or("an unknown tool"),
            version.map_or_else(|| "unknown".to_string(), |n| n.to_string()),
            tool()
        );
    }
    let plan: Plan = serde_json::from_value(v).with_context(not_a_plan)?;
    if let Err(e) = std::env::set_current_dir(&plan.cwd) {
        bail!(
            "{}: the plan was made in {}, which this machine cannot enter ({e}): plan from a directory every machine shares",
            path.display(),
            plan.cwd.display()
        );
    }
    Ok(plan)
}

/// Every sketch task's sketches, in input order; an error names the tasks not committed.
fn sketches(plan: &Plan) -> anyhow::Result<Vec<Result<tracekit_analyze::batch::Sketch, String>>> {
    let mut out = Vec::new();
    for n in 0..plan.stages[0].tasks.len() {
        let path = result_path(plan, &plan.stages[0].name, n);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("sketch task {n} has not committed: run the sketch stage first")
        })?;
        match serde_json::from_slice::<Part>(&bytes)
            .with_context(|| format!("{}: not a task's result", path.display()))?
        {
            Part::AnalyzeSketch(s) => out.extend(s),
            _ => bail!("{}: not a sketch task's result", path.display()),
        }
    }
    Ok(out)
}

/// Where task `n` of `stage` commits.
fn result_path(plan: &Plan, stage: &str, n: usize) -> PathBuf {
    plan.work.join(format!("{stage}-{n:06}.json"))
}

/// `tracekit step tasks PLAN [STAGE]`: how many tasks a stage has, or each stage's.
pub fn tasks(a: &StepTasksArgs) -> anyhow::Result<Outcome> {
    let plan = load(&a.plan)?;
    match &a.stage {
        Some(name) => {
            let Some(stage) = plan.stages.iter().find(|s| &s.name == name) else {
                bail!("the plan has no stage {name:?}");
            };
            println!("{}", stage.tasks.len());
        }
        None => {
            for stage in &plan.stages {
                println!("{} {}", stage.name, stage.tasks.len());
            }
        }
    }
    Ok(Outcome::Success)
}

pub fn task(a: &StepTaskArgs) -> anyhow::Result<Outcome> {
    let plan = load(&a.plan)?;
    let Some(stage) = plan.stages.iter().find(|s| s.name == a.stage) else {
        bail!("the plan has no stage {:?}", a.stage);
    };
    let Some(&(from, to)) = stage.tasks.get(a.task) else {
        bail!(
            "stage {} has {} tasks (0 to {}), not {}",
            stage.name,
            stage.tasks.len(),
            stage.tasks.len().saturating_sub(1),
            a.task
        );
    };
    let target = result_path(&plan, &stage.name, a.task);
    if target.exists() {
        eprintln!(
            "tracekit step task: {} {} already committed",
            stage.name, a.task
        );
        return Ok(Outcome::Success);
    }
    std::fs::create_dir_all(&plan.work)
        .with_context(|| format!("creating {}", plan.work.display()))?;
    let (result, private) = compute(&plan, stage, a.task, (from, to))?;
    let mut out = if private {
        tracekit_capture::output::AtomicFile::create_private(&target, &[])?
    } else {
        tracekit_capture::output::AtomicFile::create(&target, &[])?
    };
    serde_json::to_writer(&mut out, &result)?;
    out.commit(private)?;
    Ok(Outcome::Success)
}

/// What task `n` of `stage` (reading inputs `from..to`) commits, and whether it is private
/// (as secret as the key).
fn compute(
    plan: &Plan,
    stage: &Stage,
    n: usize,
    (from, to): (usize, usize),
) -> anyhow::Result<(Part, bool)> {
    let files: Vec<PathBuf> = plan.inputs[from..to]
        .iter()
        .map(|i| i.path.clone())
        .collect();
    Ok(match parse(&plan.command, &plan.args)? {
        Command::Info(mut i) => {
            i.quiet = true;
            let summaries = info::summaries_of(&files, &i)?;
            let rendered = summaries.iter().map(|s| info::render(s, i.json)).collect();
            (Part::Info(rendered), false)
        }
        Command::Anonymize(mut an) => {
            an.quiet = true;
            let setup = anonymize::Setup::new(&an)?;
            let Some(ap) = &plan.anonymize else {
                bail!("the plan has no anonymize section");
            };
            if setup.key.fingerprint() != ap.key {
                bail!(
                    "the key this task read (fingerprint {}) is not the plan's ({}): every task must read the same key file",
                    setup.key.fingerprint(),
                    ap.key
                );
            }
            let said = files
                .iter()
                .zip(&ap.targets[from..to])
                .map(|(input, target)| anonymize::anonymize_one(input, target, &setup, &an))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let rows = an
                .mapping_out
                .is_some()
                .then(|| anonymize::mapping_rows(&files, &setup.key, setup.policy));
            // Mapping rows hold the original addresses: as secret as the key.
            let private = rows.is_some();
            (Part::Anonymize { said, rows }, private)
        }
        Command::Analyze(an) => {
            let Some(bp) = &plan.analyze_batch else {
                bail!("the plan has no analyze --batch section");
            };
            let part = if stage.name == "sketch" {
                Part::AnalyzeSketch(analyze_steps::sketch(&files))
            } else {
                let paths: Vec<PathBuf> = plan.inputs.iter().map(|i| i.path.clone()).collect();
                let sketches = sketches(plan)?;
                Part::AnalyzePairs(analyze_steps::pairs(
                    &an,
                    &paths,
                    bp,
                    sketches,
                    (n, stage.tasks.len()),
                )?)
            };
            (part, false)
        }
        Command::Extract(ea) => {
            let paths: Vec<PathBuf> = plan.inputs.iter().map(|i| i.path.clone()).collect();
            (
                Part::ExtractMap(extract_steps::map(&ea, &paths, (from, to))?),
                false,
            )
        }
        c @ (Command::Index(_) | Command::Flows(_) | Command::Split(_)) => {
            (shuffled(plan, stage, n, (from, to), c)?, false)
        }
        _ => bail!("the plan's command {} has no tasks", plan.command),
    })
}

/// Task `n` of `stage` of a command with a shuffle (map tasks reading inputs `from..to`, then
/// reduce tasks).
fn shuffled(
    plan: &Plan,
    stage: &Stage,
    n: usize,
    (from, to): (usize, usize),
    command: Command,
) -> anyhow::Result<Part> {
    let paths: Vec<PathBuf> = plan.inputs.iter().map(|i| i.path.clone()).collect();
    let maps = plan.stages[0].tasks.len();
    Ok(match command {
        Command::Index(ia) => {
            let Some(ip) = &plan.index else {
                bail!("the plan has no index section");
            };
            if stage.name == "map" {
                Part::IndexMap(index_steps::map(
                    &ia,
                    ip,
                    &paths,
                    (from, to),
                    &plan.work,
                    n,
                )?)
            } else {
                Part::FlowsReduce(flows_steps::reduce(&ip.absolute, maps, &plan.work, n)?)
            }
        }
        Command::Flows(_) => {
            let Some(fp) = &plan.flows else {
                bail!("the plan has no flows section");
            };
            if stage.name == "map" {
                Part::FlowsMap(flows_steps::map(fp, &paths, (from, to), &plan.work, n)?)
            } else {
                Part::FlowsReduce(flows_steps::reduce(&paths, maps, &plan.work, n)?)
            }
        }
        Command::Split(sa) => {
            let Some(sp) = &plan.split else {
                bail!("the plan has no split section");
            };
            if stage.name == "map" {
                Part::SplitMap(split_steps::map(
                    &sa,
                    sp,
                    &paths,
                    (from, to),
                    &plan.work,
                    n,
                )?)
            } else {
                Part::SplitReduce(split_steps::reduce(&sa, sp, &paths, maps, &plan.work, n)?)
            }
        }
        _ => bail!("the plan's command {} has no shuffle", plan.command),
    })
}

pub fn finish(a: &StepFinishArgs) -> anyhow::Result<Outcome> {
    let plan = load(&a.plan)?;
    let finished = plan.work.join("finished");
    if finished.exists() {
        bail!(
            "{}: this plan was finished already (its outputs were moved into place); plan again to run again",
            a.plan.display()
        );
    }
    let results: Vec<(String, usize, PathBuf)> = plan
        .stages
        .iter()
        .flat_map(|stage| {
            (0..stage.tasks.len())
                .map(|n| (stage.name.clone(), n, result_path(&plan, &stage.name, n)))
        })
        .collect();
    // Read and parsed on every core: a flows run's reduce results are hundreds of MB of JSON
    // (on the 4 GB bench set, 343 MB; its finish took 2.27 s reading them one after the
    // other, 1.95 s so).
    let read: Vec<Option<anyhow::Result<Part>>> = {
        use rayon::prelude::*;
        results
            .par_iter()
            .map(|(_, _, path)| {
                let bytes = std::fs::read(path).ok()?;
                Some(
                    serde_json::from_slice::<Part>(&bytes)
                        .with_context(|| format!("{}: not a task's result", path.display())),
                )
            })
            .collect()
    };
    let mut missing = Vec::new();
    let mut parts = Vec::with_capacity(read.len());
    for ((stage, n, _), part) in results.iter().zip(read) {
        match part {
            Some(part) => parts.push(part?),
            None => missing.push(format!("{stage} {n}")),
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} task(s) have not committed: {}{}; run them (tracekit step task PLAN STAGE N), then finish again",
            missing.len(),
            missing[..missing.len().min(10)].join(", "),
            if missing.len() > 10 { ", …" } else { "" }
        );
    }
    finish_command(&plan, parts, &finished)
}

/// What the command writes, from every task's result (`finished`: the marker a finish that
/// moves results leaves).
fn finish_command(plan: &Plan, parts: Vec<Part>, finished: &Path) -> anyhow::Result<Outcome> {
    let paths: Vec<PathBuf> = plan.inputs.iter().map(|i| i.path.clone()).collect();
    match parse(&plan.command, &plan.args)? {
        Command::Info(i) => {
            let mut rendered = Vec::new();
            for p in parts {
                let Part::Info(r) = p else {
                    bail!("a task's result is not info's");
                };
                rendered.extend(r);
            }
            info::emit(&plan.not_captures, &plan.unreadable, &rendered, i.json)
        }
        Command::Anonymize(an) => {
            let mut said = Vec::new();
            let mut rows = std::collections::BTreeSet::new();
            for p in parts {
                let Part::Anonymize { said: s, rows: r } = p else {
                    bail!("a task's result is not anonymize's");
                };
                said.extend(s.into_iter().map(Ok));
                rows.extend(r.unwrap_or_default());
            }
            anonymize::report(&an, &plan.unreadable, said, || Ok(rows))
        }
        Command::Analyze(an) => {
            let Some(bp) = &plan.analyze_batch else {
                bail!("the plan has no analyze --batch section");
            };
            let (mut sketches, mut rows) = (Vec::new(), Vec::new());
            for p in parts {
                match p {
                    Part::AnalyzeSketch(s) => sketches.extend(s),
                    Part::AnalyzePairs(r) => rows.extend(r),
                    _ => bail!("a task's result is not analyze's"),
                }
            }
            analyze_steps::finish(&an, &paths, bp, sketches, &rows, &plan.unreadable)
        }
        Command::Extract(ea) => {
            let mut maps = Vec::new();
            for p in parts {
                let Part::ExtractMap(m) = p else {
                    bail!("a task's result is not extract's");
                };
                maps.push(m);
            }
            extract_steps::finish(&ea, maps)
        }
        Command::Index(ia) => {
            let Some(ip) = &plan.index else {
                bail!("the plan has no index section");
            };
            let (mut maps, mut reduces) = (Vec::new(), Vec::new());
            for p in parts {
                match p {
                    Part::IndexMap(m) => maps.push(m),
                    Part::FlowsReduce(r) => reduces.push(r),
                    _ => bail!("a task's result is not index's"),
                }
            }
            index_steps::finish(&ia, ip, maps, reduces, &plan.work)
        }
        Command::Flows(fa) => {
            let Some(fp) = &plan.flows else {
                bail!("the plan has no flows section");
            };
            let mut reduces = Vec::new();
            for p in parts {
                match p {
                    Part::FlowsMap(_) => {}
                    Part::FlowsReduce(r) => reduces.push(r),
                    _ => bail!("a task's result is not flows'"),
                }
            }
            let maps = plan.stages[0].tasks.len();
            flows_steps::finish(&fa, fp, &paths, maps, reduces, &plan.work)
        }
        Command::Split(sa) => {
            let Some(sp) = &plan.split else {
                bail!("the plan has no split section");
            };
            let (mut maps, mut reduces) = (Vec::new(), Vec::new());
            for p in parts {
                match p {
                    Part::SplitMap(m) => maps.push(m),
                    Part::SplitReduce(r) => reduces.push(r),
                    _ => bail!("a task's result is not split's"),
                }
            }
            let outcome = split_steps::finish(&sa, sp, &paths, &maps, &reduces, &plan.work)?;
            // The outputs were moved: a second finish would find nothing to move.
            std::fs::write(finished, b"")
                .with_context(|| format!("writing {}", finished.display()))?;
            Ok(outcome)
        }
        _ => bail!("the plan's command {} has no finish", plan.command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(sizes: &[u64]) -> Vec<Input> {
        sizes
            .iter()
            .map(|&size| Input {
                path: PathBuf::new(),
                size,
            })
            .collect()
    }

    #[test]
    fn shards_are_contiguous_cover_every_input_and_balance_bytes() {
        assert_eq!(shards(&sized(&[]), 4), Vec::<(usize, usize)>::new());
        assert_eq!(shards(&sized(&[5, 5, 5]), 0), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(shards(&sized(&[5, 5, 5]), 9), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(shards(&sized(&[1, 1, 1, 1]), 2), vec![(0, 2), (2, 4)]);
        assert_eq!(shards(&sized(&[100, 1, 1, 1]), 2), vec![(0, 1), (1, 4)]);
        assert_eq!(shards(&sized(&[1, 1, 1, 100]), 2), vec![(0, 3), (3, 4)]);
        for count in 1..8 {
            let s = shards(&sized(&[3, 9, 1, 0, 7, 2, 2]), count);
            assert_eq!(s.len(), count.min(7));
            assert_eq!(s[0].0, 0);
            assert_eq!(s.last().unwrap().1, 7);
            assert!(s.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1));
        }
    }
}
