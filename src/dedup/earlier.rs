//! The accepted pairs of earlier output folders (`[dedup.near] against`),
//! as near-dedup compares new pairs with them (the sink reads them:
//! `sink::earlier`).

/// An accepted pair of an earlier output folder, as near-dedup compares it.
pub struct EarlierPair {
    pub pair_id: String,
    /// The edit, and its edited context when it has one.
    pub text: String,
    pub context: Option<String>,
    pub field: String,
    pub edited_label: Option<String>,
}
