//! File formats of file streams ([`StreamingContext::file_stream`](crate::StreamingContext::file_stream))
//! and file outputs ([`DStream::save_as_files`](crate::DStream::save_as_files)), Spark's
//! `saveAsHadoopFiles` and `saveAsObjectFiles` counterparts: records go through serde.
//!
//! - [`Text`]: one record per line as `print` shows it (outputs only).
//! - [`JsonLines`]: one JSON value per line.
//! - [`Csv`]: comma-separated values, with or without a header line; a struct's fields (or a
//!   tuple's elements) are the columns, in order.
//! - [`ObjectFile`]: Ember's binary object file, for records that only Ember reads back
//!   (Spark's `saveAsObjectFiles` writes Java-serialized objects; this is its counterpart). The
//!   layout, version 1: the 8 bytes `EMBEROBJ`, the version byte `1`, then per record a frame of
//!   its length (u32, little-endian), the CRC-32 of its bytes (u32, little-endian) and its bytes,
//!   the record in bincode 1's default encoding (fixed-width little-endian integers,
//!   length-prefixed sequences).
//!
//! Line formats are read as a stream, a line at a time; a line that does not decode is skipped,
//! counted with the input's skipped records (the web UI shows them) and logged with the file's
//! name and the line's number (the first 10, then every 1000th). An object file is read whole;
//! one that is damaged (another format, a truncated or altered frame) is skipped whole, counted
//! and logged with its name, so a batch never holds part of one.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// How records are written to and read from files.
pub trait FileFormat<T>: Send + Sync + 'static {
    /// Appends the encoding of `records` (one part file) to `out`.
    fn encode(&self, records: &[T], out: &mut Vec<u8>) -> Result<()>;
    /// Appends more records to a file that [`encode`](Self::encode) began (no header again);
    /// rolling outputs write a file of many batches so. By default, `encode`.
    fn encode_more(&self, records: &[T], out: &mut Vec<u8>) -> Result<()> {
        self.encode(records, out)
    }
    /// The extension of the part files of [`save_as_files`](crate::DStream::save_as_files)
    /// (`"parquet"` gives `part-00000.parquet`, which readers that look for the extension find);
    /// by default none.
    fn extension(&self) -> &str {
        ""
    }
    /// Whether files are read a line at a time ([`decode_line`](Self::decode_line)) rather
    /// than whole ([`decode_file`](Self::decode_file)).
    fn line_based(&self) -> bool;
    /// Decodes line `n` (from 1) of a file: `Ok(None)` for a line that holds no record (a
    /// header), `Err` with the reason to skip it.
    fn decode_line(&self, n: u64, line: &str) -> std::result::Result<Option<T>, String> {
        let _ = (n, line);
        Err("this format is not read by lines".into())
    }
    /// Decodes a whole file into `out`, or says why it is skipped.
    fn decode_file(&self, bytes: &[u8], out: &mut Vec<T>) -> std::result::Result<(), String> {
        let _ = (bytes, out);
        Err("this format is read by lines".into())
    }
}

fn encoding(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::external(format!("a record does not encode as {what}"), e)
}

/// Text, one record per line as `print` shows it (`save_as_text_files`' format), for outputs;
/// text is read back with [`text_file_stream`](crate::StreamingContext::text_file_stream).
#[derive(Debug, Clone, Copy, Default)]
pub struct Text;

impl<T: crate::Printable + 'static> FileFormat<T> for Text {
    fn encode(&self, records: &[T], out: &mut Vec<u8>) -> Result<()> {
        let mut text = String::new();
        for r in records {
            r.print_to(&mut text);
            text.push('\n');
        }
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    fn line_based(&self) -> bool {
        true
    }

    fn decode_line(&self, _n: u64, _line: &str) -> std::result::Result<Option<T>, String> {
        Err("text is read with text_file_stream".into())
    }
}

/// One JSON value per line (JSON Lines).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<T: Serialize + DeserializeOwned + 'static> FileFormat<T> for JsonLines {
    fn encode(&self, records: &[T], out: &mut Vec<u8>) -> Result<()> {
        for r in records {
            serde_json::to_writer(&mut *out, r).map_err(|e| encoding("JSON", e))?;
            out.push(b'\n');
        }
        Ok(())
    }

    fn line_based(&self) -> bool {
        true
    }

    fn decode_line(&self, _n: u64, line: &str) -> std::result::Result<Option<T>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(line).map(Some).map_err(|e| e.to_string())
    }
}

/// Comma-separated values (RFC 4180 quoting). With `header`, files start with a line of column
/// names: written from a struct's field names, skipped when read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv {
    /// Whether files have a header line.
    pub header: bool,
}

impl<T: Serialize + DeserializeOwned + 'static> FileFormat<T> for Csv {
    fn encode(&self, records: &[T], out: &mut Vec<u8>) -> Result<()> {
        let mut w = csv::WriterBuilder::new().has_headers(self.header).from_writer(&mut *out);
        for r in records {
            w.serialize(r).map_err(|e| encoding("CSV", e))?;
        }
        w.flush().map_err(|e| encoding("CSV", e))
    }

    fn encode_more(&self, records: &[T], out: &mut Vec<u8>) -> Result<()> {
        Csv { header: false }.encode(records, out)
    }

    fn line_based(&self) -> bool {
        true
    }

    fn decode_line(&self, n: u64, line: &str) -> std::result::Result<Option<T>, String> {
        if (self.header && n == 1) || line.is_empty() {
            return Ok(None);
        }
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
        match r.deserialize::<T>().next() {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(e)) => Err(e.to_string()),
            None => Ok(None),
        }
    }
}

/// Ember's binary object file (see the module docs for its layout).
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectFile;

const MAGIC: &[u8; 8] = b"EMBEROBJ";
const VERSION: u8 = 1;

impl<T: Serialize + DeserializeOwned + 'static> FileFormat<T> for ObjectFile {
    fn encode(&self, records: &[T], out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        self.encode_more(records, out)
    }

    fn encode_more(&self, records: &[T], out: &mut Vec<u8>) -> Result<()> {
        for r in records {
            let bytes = bincode::serialize(r).map_err(|e| encoding("an object", e))?;
            let len = u32::try_from(bytes.len())
                .map_err(|_| encoding("an object", std::io::Error::other("it is larger than 4 GiB")))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(())
    }

    fn line_based(&self) -> bool {
        false
    }

    fn decode_file(&self, bytes: &[u8], out: &mut Vec<T>) -> std::result::Result<(), String> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not an Ember object file (no EMBEROBJ header)")?;
        let (&version, mut rest) = rest.split_first().ok_or("no format version")?;
        if version != VERSION {
            return Err(format!("object file version {version}; this Ember reads version {VERSION}"));
        }
        let mut records = Vec::new();
        while !rest.is_empty() {
            let n = records.len();
            let head = rest.get(..8).ok_or(format!("record {n} is cut short"))?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let body = rest.get(8..8 + len).ok_or(format!("record {n} is cut short"))?;
            if crc32fast::hash(body) != crc {
                return Err(format!("record {n} fails its checksum"));
            }
            records.push(bincode::deserialize(body).map_err(|e| format!("record {n} does not decode: {e}"))?);
            rest = &rest[8 + len..];
        }
        out.append(&mut records);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct Click {
        page: String,
        user: Option<u32>,
        ms: f64,
    }

    fn clicks() -> Vec<Click> {
        vec![
            Click { page: "/a, b".into(), user: Some(7), ms: 1.5 },
            Click { page: "say \"hi\"".into(), user: None, ms: 0.0 },
        ]
    }

    fn round_trip<F: FileFormat<Click>>(f: &F) -> Vec<Click> {
        let mut bytes = Vec::new();
        f.encode(&clicks(), &mut bytes).unwrap();
        let mut out = Vec::new();
        if f.line_based() {
            let text = String::from_utf8(bytes).unwrap();
            for (i, line) in text.lines().enumerate() {
                out.extend(f.decode_line(i as u64 + 1, line).unwrap());
            }
        } else {
            f.decode_file(&bytes, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn every_format_reads_back_what_it_wrote() {
        assert_eq!(round_trip(&JsonLines), clicks());
        assert_eq!(round_trip(&Csv { header: true }), clicks());
        assert_eq!(round_trip(&Csv { header: false }), clicks());
        assert_eq!(round_trip(&ObjectFile), clicks());
        let mut text = Vec::new();
        Csv { header: true }.encode(&clicks(), &mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().starts_with("page,user,ms\n\"/a, b\",7,1.5\n"));
    }

    #[test]
    fn bad_lines_and_damaged_object_files_say_why() {
        let e = <JsonLines as FileFormat<Click>>::decode_line(&JsonLines, 1, "{\"page\": 1}").unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        let e = <Csv as FileFormat<Click>>::decode_line(&Csv { header: false }, 3, "/a,7").unwrap_err();
        assert!(!e.is_empty());
        let mut bytes = Vec::new();
        ObjectFile.encode(&clicks(), &mut bytes).unwrap();
        let mut out: Vec<Click> = Vec::new();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(ObjectFile.decode_file(&bytes, &mut out).unwrap_err().contains("record 1 fails its checksum"));
        assert!(ObjectFile.decode_file(&bytes[..last], &mut out).unwrap_err().contains("cut short"));
        assert!(ObjectFile.decode_file(b"hello", &mut out).unwrap_err().contains("not an Ember object file"));
        assert!(out.is_empty(), "a damaged file gives no record");
    }
}
