//! The on-disk frame of every checkpoint file: a magic, a version, the kind of record, the
//! payload's length, the payload (bincode) and a CRC-32 of everything before it. A file that is
//! truncated, has a flipped byte, or holds another kind of record is rejected with an error that
//! says which — never a panic, never a silent misread.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"EMBR";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 8;

/// What a checkpoint file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FrameKind {
    /// A commit record: the checkpoint of batch `t` exists.
    Commit = 1,
    /// One worker's snapshot of one stateful operator.
    State = 2,
    /// A source's position.
    Position = 3,
    /// The inputs of one batch (the batch log).
    BatchLog = 4,
    /// A block of received records (the write-ahead log).
    Block = 5,
    /// A commit record that lists its parts with their checksums (the current format; `Commit`
    /// frames hold the earlier ones).
    CommitWithChecksums = 6,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Commit,
            2 => FrameKind::State,
            3 => FrameKind::Position,
            4 => FrameKind::BatchLog,
            5 => FrameKind::Block,
            6 => FrameKind::CommitWithChecksums,
            _ => return None,
        })
    }
}

/// Frames an already-encoded payload.
pub(crate) fn frame_bytes(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len() + 4);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Encodes `value` as a frame of `kind`.
pub(crate) fn encode<T: Serialize>(kind: FrameKind, value: &T) -> Result<Vec<u8>> {
    let payload = bincode::serialize(value).map_err(|e| Error::Internal(format!("encoding a {kind:?} record: {e}")))?;
    Ok(frame_bytes(kind, &payload))
}

/// The payload of a frame of `kind`, checked.
pub(crate) fn unframe<'a>(kind: FrameKind, bytes: &'a [u8], what: &str) -> Result<&'a [u8]> {
    let corrupt = |reason: String| Error::Corrupt { what: what.to_owned(), reason };
    if bytes.len() < HEADER + 4 {
        return Err(corrupt(format!("truncated: {} bytes, shorter than a header", bytes.len())));
    }
    if &bytes[..4] != MAGIC {
        return Err(corrupt("not an Ember checkpoint file (bad magic)".into()));
    }
    if bytes[4] != VERSION {
        return Err(corrupt(format!("format version {} (this Ember reads {VERSION})", bytes[4])));
    }
    let found = FrameKind::from_u8(bytes[5]);
    if found != Some(kind) {
        return Err(corrupt(format!("holds a {found:?} record where a {kind:?} record was expected")));
    }
    let len = u64::from_le_bytes(bytes[6..14].try_into().unwrap_or([0; 8])) as usize;
    if bytes.len() != HEADER + len + 4 {
        return Err(corrupt(format!("truncated or padded: {} bytes for a {len}-byte payload", bytes.len())));
    }
    let body = &bytes[..HEADER + len];
    let stored = u32::from_le_bytes(bytes[HEADER + len..].try_into().unwrap_or([0; 4]));
    if crc32fast::hash(body) != stored {
        return Err(corrupt("checksum mismatch".into()));
    }
    Ok(&bytes[HEADER..HEADER + len])
}

/// Decodes a frame of `kind` holding a `T`.
pub(crate) fn decode<T: DeserializeOwned>(kind: FrameKind, bytes: &[u8], what: &str) -> Result<T> {
    let payload = unframe(kind, bytes, what)?;
    bincode::deserialize(payload)
        .map_err(|e| Error::Corrupt { what: what.to_owned(), reason: format!("undecodable payload: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_round_trip(values in proptest::collection::vec((any::<u64>(), ".*"), 0..20)) {
            let bytes = encode(FrameKind::State, &values).unwrap();
            let back: Vec<(u64, String)> = decode(FrameKind::State, &bytes, "test").unwrap();
            prop_assert_eq!(back, values);
        }

        #[test]
        fn any_flipped_byte_is_detected(values in proptest::collection::vec(any::<u32>(), 1..50), at in any::<usize>(), bit in 0u8..8) {
            let mut bytes = encode(FrameKind::BatchLog, &values).unwrap();
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
            prop_assert!(decode::<Vec<u32>>(FrameKind::BatchLog, &bytes, "test").is_err());
        }

        #[test]
        fn any_truncation_is_detected(values in proptest::collection::vec(any::<u32>(), 1..50), keep in any::<usize>()) {
            let bytes = encode(FrameKind::Commit, &values).unwrap();
            let keep = keep % bytes.len();
            prop_assert!(decode::<Vec<u32>>(FrameKind::Commit, &bytes[..keep], "test").is_err());
        }
    }

    #[test]
    fn the_wrong_kind_is_rejected() {
        let bytes = encode(FrameKind::State, &1u32).unwrap();
        let e = decode::<u32>(FrameKind::Commit, &bytes, "commit-5000").unwrap_err().to_string();
        assert!(e.contains("commit-5000") && e.contains("expected"), "{e}");
    }
}
