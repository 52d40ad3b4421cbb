//! The accepted pairs of earlier output folders (`[dedup.near] against`),
//! read for near-dedup to compare new pairs with.

use std::path::Path;

/// An accepted pair of an earlier output folder, as near-dedup compares it.
pub struct EarlierPair {
    pub pair_id: String,
    /// The edit, and its edited context when it has one.
    pub text: String,
    pub context: Option<String>,
    pub field: String,
    pub edited_label: Option<String>,
}

/// Every accepted pair of an earlier output folder, in shard order.
pub fn read_accepted(dir: &Path) -> Result<Vec<EarlierPair>, String> {
    let manifest = crate::sink::Manifest::read(dir).map_err(|e| {
        format!(
            "--against `{}`: not a foil output folder (no readable manifest.json: {e})",
            dir.display()
        )
    })?;
    let frames = crate::sink::shards::read_shards(dir, &manifest.shards)
        .map_err(|e| format!("--against `{}`: reading shards: {e}", dir.display()))?;
    let mut out = Vec::new();
    for df in frames {
        let col = |name: &str| -> Result<Vec<Option<String>>, String> {
            // Folders written before a column existed lack it: all missing.
            let Ok(c) = df.column(name) else {
                return Ok(vec![None; df.height()]);
            };
            let s = c
                .str()
                .map_err(|e| format!("--against `{}`: column `{name}`: {e}", dir.display()))?;
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
