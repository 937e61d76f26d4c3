//! The selection flags (`cli::SelectArgs`) checked and turned into `tracekit_select::Spec`
//! before any input is opened: a bad time, expression, hosts-file line or frame range is a
//! usage error (exit 2) that names the position, and nothing is written.

use std::sync::Arc;

use anyhow::{Context, bail};
use tracekit_select::{Filter, Frames, HostSet, Spec, TimeSpec};

use crate::cli::SelectArgs;

impl TryFrom<&SelectArgs> for Spec {
    type Error = anyhow::Error;

    fn try_from(a: &SelectArgs) -> anyhow::Result<Spec> {
        let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<TimeSpec>> {
            v.as_deref()
                .map(|s| TimeSpec::parse(s).map_err(|e| anyhow::anyhow!("{flag} {e}")))
                .transpose()
        };
        let after = time("--after", &a.after)?;
        let before = time("--before", &a.before)?;
        if let (Some(TimeSpec::Absolute(x)), Some(TimeSpec::Absolute(y)))
        | (Some(TimeSpec::FromFirst(x)), Some(TimeSpec::FromFirst(y))) = (after, before)
            && y <= x
        {
            bail!("--before must be later than --after: the window [after, before) is empty");
        }
        let filter = match &a.filter {
            None => None,
            Some(expr) => Some(Arc::new(Filter::new(expr).map_err(|e| match e.at {
                Some(at) => anyhow::anyhow!(
                    "--filter: {} at character {}:\n  {expr}\n  {}^",
                    e.message,
                    expr[..at].chars().count() + 1,
                    " ".repeat(expr[..at].chars().count())
                ),
                None => anyhow::anyhow!("--filter: {}", e.message),
            })?)),
        };
        let hosts = match &a.hosts_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--hosts-file {}", path.display()))?;
                let set = HostSet::parse(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "--hosts-file {} line {} column {}: {}",
                        path.display(),
                        e.line,
                        e.column,
                        e.message
                    )
                })?;
                Some(Arc::new(set))
            }
        };
        let frames = a
            .frames
            .as_deref()
            .map(|s| {
                Frames::parse(s)
                    .map_err(|(at, msg)| anyhow::anyhow!("--frames at character {at}: {msg}"))
            })
            .transpose()?;
        let community_id = match &a.community_id {
            None => None,
            Some(id) => {
                let body = id.strip_prefix("1:").with_context(|| {
                    format!("--community-id {id:?}: a v1 Community ID starts with \"1:\"")
                })?;
                if body.len() != 28
                    || !body
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
                {
                    bail!(
                        "--community-id {id:?}: expected \"1:\" and 28 base64 characters (a SHA-1 digest)"
                    );
                }
                Some((id.clone(), a.seed))
            }
        };
        Ok(Spec {
            after,
            before,
            filter,
            hosts,
            frames,
            community_id,
        })
    }
}
