//! Splitting a stream of records into `POST /v1/resources:batch` bodies within the API's
//! limits: at most 1,000 records and 1 MiB per body (DESIGN §8; 413 beyond).
//!
//! Generated records average about 1 KB, so 1,000 of them can exceed 1 MiB: a batch closes
//! at whichever limit comes first. The split depends only on the records, so the same
//! estate always gives the same batches (their idempotency keys rely on it).

use serde::Serialize;

use super::record::InventoryRecord;

/// The API's limit on records per batch.
pub const MAX_BATCH: usize = 1_000;
/// Bytes of records per body: 1 MiB less room for the envelope and a margin, so that a
/// re-encoding with other escaping still fits.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024 - 32 * 1024;

/// One request's records and where they start in the estate.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// 0 for the first batch of the load.
    pub number: usize,
    /// The position of the first record in the estate.
    pub first: usize,
    pub records: Vec<InventoryRecord>,
}

/// The body of `POST /v1/resources:batch`.
#[derive(Serialize)]
pub struct BatchBody<'a> {
    pub resources: &'a [InventoryRecord],
}

/// Batches of `records` with at most `max_records` each (clamped to 1..=[`MAX_BATCH`]).
pub struct Batches<I> {
    records: I,
    max_records: usize,
    carried: Option<(InventoryRecord, usize)>,
    number: usize,
    first: usize,
}

impl<I: Iterator<Item = InventoryRecord>> Batches<I> {
    pub fn new(records: I, max_records: usize) -> Self {
        Self { records, max_records: max_records.clamp(1, MAX_BATCH), carried: None, number: 0, first: 0 }
    }
}

impl<I: Iterator<Item = InventoryRecord>> Iterator for Batches<I> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut records = Vec::new();
        let mut bytes = 0;
        while records.len() < self.max_records {
            let Some((record, size)) = self.carried.take().or_else(|| {
                let record = self.records.next()?;
                // The encoded length, plus the comma that separates it from the next.
                let size = serde_json::to_vec(&record).map_or(0, |v| v.len()) + 1;
                Some((record, size))
            }) else {
                break;
            };
            // A record too large for any batch still goes alone: the API names the problem.
            if !records.is_empty() && bytes + size > MAX_BATCH_BYTES {
                self.carried = Some((record, size));
                break;
            }
            bytes += size;
            records.push(record);
        }
        if records.is_empty() {
            return None;
        }
        let batch = Batch { number: self.number, first: self.first, records };
        self.number += 1;
        self.first += batch.records.len();
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{Estate, EstateConfig};

    #[test]
    fn batches_cover_the_estate_in_order_within_both_limits() {
        let estate: Vec<InventoryRecord> = Estate::new(&EstateConfig::new(7, 2_500)).collect();
        let batches: Vec<Batch> = Batches::new(estate.clone().into_iter(), MAX_BATCH).collect();
        let mut next = 0;
        for (n, batch) in batches.iter().enumerate() {
            assert_eq!((batch.number, batch.first), (n, next));
            assert!(batch.records.len() <= MAX_BATCH);
            let body = serde_json::to_vec(&BatchBody { resources: &batch.records }).unwrap_or_default();
            assert!(body.len() <= 1024 * 1024, "batch {n} is {} bytes", body.len());
            next += batch.records.len();
        }
        let flattened: Vec<InventoryRecord> = batches.into_iter().flat_map(|b| b.records).collect();
        assert_eq!(flattened, estate);
    }

    #[test]
    fn small_batches_are_cut_by_count() {
        let sizes: Vec<usize> =
            Batches::new(Estate::new(&EstateConfig::new(1, 25)), 10).map(|b| b.records.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }
}
