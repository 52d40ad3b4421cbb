//! Reading the accepted pairs of earlier output folders (`[dedup.near]
//! against`) into near-dedup, so a new run does not repeat them.

use std::path::Path;

use crate::UsageError;
use crate::dedup::NearDedup;
use crate::dedup::near::EarlierPair;

/// Remember in `near` the accepted pairs of every folder its settings name
/// under `against`; how many.
pub fn load_against(near: &mut NearDedup) -> anyhow::Result<usize> {
    let mut n = 0;
    for (i, dir) in near.against().to_vec().iter().enumerate() {
        let pairs = read_accepted(dir)?;
        n += near
            .remember_earlier(i, pairs)
            .map_err(|e| anyhow::anyhow!("near-dedup index: {e}"))?;
    }
    Ok(n)
}

/// Every accepted pair of an earlier output folder, in shard order.
pub fn read_accepted(dir: &Path) -> Result<Vec<EarlierPair>, UsageError> {
    let manifest = super::Manifest::read(dir).map_err(|e| {
        UsageError::new(format!(
            "--against `{}`: not a foil output folder (no readable manifest.json: {e})",
            dir.display()
        ))
    })?;
    let frames = super::shards::read_shards(dir, &manifest.shards).map_err(|e| {
        UsageError::new(format!(
            "--against `{}`: reading shards: {e}",
            dir.display()
        ))
    })?;
    let mut out = Vec::new();
    for df in frames {
        let col = |name: &str| -> Result<Vec<Option<String>>, UsageError> {
            // Folders written before a column existed lack it: all missing.
            let Ok(c) = df.column(name) else {
                return Ok(vec![None; df.height()]);
            };
            let s = c.str().map_err(|e| {
                UsageError::new(format!(
                    "--against `{}`: column `{name}`: {e}",
                    dir.display()
                ))
            })?;
            Ok(s.iter().map(|v| v.map(str::to_string)).collect())
        };
        let (ids, edited, context, field) = (
            col("pair_id")?,
            col("edited")?,
            col("context")?,
            col("edited_field")?,
        );
        let (edited_context, label) = (col("edited_context")?, col("edited_label")?);
        for i in 0..ids.len() {
            let edited = edited[i].clone().unwrap_or_default();
            out.push(EarlierPair {
                pair_id: ids[i].clone().unwrap_or_default(),
                text: match &edited_context[i] {
                    Some(ctx) => format!("{edited}\n{ctx}"),
                    None => edited,
                },
                context: context[i].clone(),
                field: field[i].clone().unwrap_or_else(|| "text".into()),
                edited_label: label[i].clone(),
            });
        }
    }
    Ok(out)
}
