//! PostgreSQL's binary `COPY` format, for the few column types the
//! `activity` table has: the rows of a batch encoded into one buffer,
//! field by field, with no per-column arrays and no per-value allocation.
//!
//! Format (PostgreSQL's "Binary Format" of `COPY`): a signature, flags and
//! an empty header extension; per row the field count (int16) and per
//! field its length in bytes (int32, -1 for NULL) and its value in the
//! type's binary send format, big-endian; an int16 -1 at the end.
//!
//! Invariant: every row is given the table's column count and the fields
//! in the `COPY` statement's column order (the caller's duty: PostgreSQL
//! refuses the whole `COPY` otherwise, so a mistake cannot store a row).

use chrono::{DateTime, Utc};
use uuid::Uuid;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
/// A guess of an encoded `activity` row's size, to allocate once.
const ROW_BYTES_GUESS: usize = 320;

/// Rows being encoded; [`CopyRows::finish`] gives the `COPY` data.
#[derive(Debug)]
pub struct CopyRows {
    buf: Vec<u8>,
}

impl CopyRows {
    pub fn with_capacity(rows: usize) -> Self {
        let mut buf = Vec::with_capacity(SIGNATURE.len() + 8 + rows * ROW_BYTES_GUESS + 2);
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0_i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0_i32.to_be_bytes()); // header extension: none
        Self { buf }
    }

    /// Starts a row of `fields` fields.
    pub fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    fn field(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            // Values here are headers and short names, far below 2 GiB.
            Some(bytes) => {
                let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
                self.buf.extend_from_slice(&len.to_be_bytes());
                self.buf.extend_from_slice(bytes);
            }
            None => self.buf.extend_from_slice(&(-1_i32).to_be_bytes()),
        }
        self
    }

    pub fn uuid(&mut self, value: Option<Uuid>) -> &mut Self {
        self.field(value.as_ref().map(|id| id.as_bytes().as_slice()))
    }

    pub fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.field(value.map(str::as_bytes))
    }

    pub fn int2(&mut self, value: i16) -> &mut Self {
        self.field(Some(&value.to_be_bytes()))
    }

    pub fn int8(&mut self, value: i64) -> &mut Self {
        self.field(Some(&value.to_be_bytes()))
    }

    /// Microseconds since PostgreSQL's epoch (sub-microseconds dropped, as
    /// PostgreSQL stores them).
    pub fn timestamptz(&mut self, at: DateTime<Utc>) -> &mut Self {
        self.int8(at.timestamp_micros() - PG_EPOCH_UNIX_MICROS)
    }

    /// The data to send: the rows and the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_its_field_count_then_length_prefixed_big_endian_values() {
        let at = DateTime::parse_from_rfc3339("2000-01-01T00:00:01.000002Z").unwrap().with_timezone(&Utc);
        let mut rows = CopyRows::with_capacity(1);
        rows.row(4).text(Some("ab")).uuid(None).int2(-2).timestamptz(at);
        let data = rows.finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0xff, 0xfe]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x42]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(data, expected);
    }
}
