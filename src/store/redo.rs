//! The redo log: how an everyday write becomes durable with one page instead of a B-tree
//! commit.
//!
//! A durable redb commit writes every page its B-trees touched (an ingest touches about a
//! dozen tables: some 40 pages) and syncs them. At an everyday rate nothing batches, so
//! each event paid that alone (BENCHMARKS.md, "Where scenario c's CPU goes"). The writer
//! therefore commits most batches to redb with `Durability::None` (visible to every reader
//! at once, nothing written to disk yet) and makes them durable here instead: the batch's
//! jobs, as data, appended to `hookd.wal` beside the store and synced, before the batch is
//! answered. About once a second (and at shutdown, or before any job that is not logged)
//! the writer commits to redb durably, a *checkpoint*, which makes every logged batch
//! before it part of the durable file, and the log starts again from its beginning.
//!
//! After a crash redb opens at its last checkpoint, and the batches logged after it are
//! run again, in order, through the same code ([`super::ops::logged`]). They come out the
//! same because a logged job carries everything it reads that is not in the store: its
//! clock reading and the ids it drew (the batch's *id tape*, [`super::writer::Tx`]).
//!
//! The file is a sequence of records, each
//! `[payload length: u32][crc32: u32][batch seq: u64][payload]`, little-endian. Records are
//! written in place from offset 0 after every checkpoint, so the file keeps the size of the
//! largest *stretch* between two checkpoints and its tail holds older records. Every
//! checkpoint draws a new stretch id and stores it in the same transaction
//! ([`super::tables::LOG_STRETCH`]); the CRC covers the stretch id, the seq and the payload.
//! Reading stops at the first record that does not follow: a bad CRC (a torn write, or a
//! record of another stretch: one the durable file already includes, one of another file
//! such as a restored copy), or a seq that is not the previous one plus one. Only the last
//! record can be torn: each is synced before the next is written.
//!
//! Invariants (with [`super::tables::LOG_APPLIED`]):
//! - every batch the writer answered without a durable redb commit is in the log, synced,
//!   before its answer, in the stretch that the last durable commit named;
//! - `meta.log_applied` is the seq of the last logged batch the stored state includes
//!   (redb may make a non-durable commit durable when it closes a file), so the records to
//!   run again after a crash are exactly those of the chain with a greater seq.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Length, CRC and seq in front of every payload.
pub const HEADER: usize = 16;

/// The log's file, and where the next record goes.
pub struct RedoLog {
    file: File,
    path: PathBuf,
    /// The current stretch's id, mixed into every CRC (see the module docs).
    stretch: u64,
    /// Where the next record is written: the end of the current stretch.
    end: u64,
}

/// A record read back: its batch seq and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub seq: u64,
    pub payload: Vec<u8>,
}

impl RedoLog {
    /// The log of the store at `store`: the same name, extension `wal`.
    pub fn path_for(store: &Path) -> PathBuf {
        store.with_extension("wal")
    }

    /// Opens (or creates) the log, to read stretch `stretch` ([`RedoLog::read`]) and
    /// then to start a new one ([`RedoLog::restart`]). The directory is synced, so that a
    /// log just created is found after a power loss.
    pub fn open(path: &Path, stretch: u64) -> io::Result<RedoLog> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(RedoLog {
            file,
            path: path.to_owned(),
            stretch,
            end: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes written since the last checkpoint.
    pub fn stretch_bytes(&self) -> u64 {
        self.end
    }

    /// Writes `frame` (the space for the header, then the payload: [`BatchFrame`]) as record `seq` at the
    /// end of the current stretch and syncs it. On an error the end does not move: the
    /// next record overwrites whatever part of this one reached the file.
    pub fn append(&mut self, seq: u64, frame: &mut [u8]) -> io::Result<()> {
        let payload_len = frame.len().checked_sub(HEADER).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "a frame without its header")
        })?;
        let len = u32::try_from(payload_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a batch over 4 GiB"))?;
        let crc = checksum(self.stretch, seq, &frame[HEADER..]);
        frame[0..4].copy_from_slice(&len.to_le_bytes());
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        frame[8..16].copy_from_slice(&seq.to_le_bytes());
        let written = self
            .file
            .write_all_at(frame, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // The batch is answered with an error: spoil the record, so that the reopen,
            // which reads the file back, does not run it (best effort: if this does not
            // reach the disk either, a crash now may leave the record whole, and it runs).
            let _ = self.file.write_all_at(&[0u8; HEADER], self.end);
            return Err(e);
        }
        self.end += frame.len() as u64;
        Ok(())
    }

    /// Starts stretch `stretch` at the beginning of the file, after a checkpoint that
    /// stored it made every record so far part of the durable store.
    pub fn restart(&mut self, stretch: u64) {
        self.stretch = stretch;
        self.end = 0;
    }

    /// The chain of records from the start of the file (see the module docs).
    pub fn read(&self) -> io::Result<Vec<LogRecord>> {
        Ok(chain(&std::fs::read(&self.path)?, self.stretch))
    }
}

/// A batch's payload:
/// `[event seq: u64][delivery seq: u64][entries: u32]{[length: u32][entry]}*[ids: u32]{[id: u128]}*`:
/// the sequence counters as the batch found them (a batch that failed before it may have
/// skipped some), its jobs' entries in the order they ran, then the ids they drew, in order.
pub struct BatchFrame {
    frame: Vec<u8>,
}

impl BatchFrame {
    /// A frame holding the counters and `entries`, to which [`BatchFrame::finish`] adds
    /// the id tape.
    pub fn new(seqs: [u64; 2], entries: &[&[u8]]) -> BatchFrame {
        let mut frame = vec![0; HEADER];
        for seq in seqs {
            frame.extend_from_slice(&seq.to_le_bytes());
        }
        put_len(&mut frame, entries.len());
        for entry in entries {
            put_len(&mut frame, entry.len());
            frame.extend_from_slice(entry);
        }
        BatchFrame { frame }
    }

    /// The whole frame, for [`RedoLog::append`].
    pub fn finish(mut self, ids: &[u128]) -> Vec<u8> {
        put_len(&mut self.frame, ids.len());
        for id in ids {
            self.frame.extend_from_slice(&id.to_le_bytes());
        }
        self.frame
    }
}

/// A length as the frame stores it (a batch never holds 4 GiB: saturating is unreachable).
fn put_len(frame: &mut Vec<u8>, len: usize) {
    frame.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

/// A payload read back: the counters, its entries and its id tape.
pub struct Batch<'p> {
    pub seqs: [u64; 2],
    pub entries: Vec<&'p [u8]>,
    pub ids: Vec<u128>,
}

/// Splits a payload written by [`BatchFrame`]; `None` if it does not parse (a record whose
/// CRC matched, so a defect rather than a torn write).
pub fn parse(payload: &[u8]) -> Option<Batch<'_>> {
    let mut rest = payload;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let seqs = [
        u64::from_le_bytes(bytes_at(take(8)?, 0)),
        u64::from_le_bytes(bytes_at(take(8)?, 0)),
    ];
    let count = u32::from_le_bytes(bytes_at(take(4)?, 0)) as usize;
    let mut entries = Vec::with_capacity(count.min(payload.len()));
    for _ in 0..count {
        let len = u32::from_le_bytes(bytes_at(take(4)?, 0)) as usize;
        entries.push(take(len)?);
    }
    let ids_count = u32::from_le_bytes(bytes_at(take(4)?, 0)) as usize;
    let mut ids = Vec::with_capacity(ids_count.min(payload.len() / 16));
    for _ in 0..ids_count {
        ids.push(u128::from_le_bytes(bytes_at(take(16)?, 0)));
    }
    rest.is_empty().then_some(Batch { seqs, entries, ids })
}

fn checksum(stretch: u64, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&stretch.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The records of stretch `stretch` in `bytes` that form a chain from offset 0.
fn chain(bytes: &[u8], stretch: u64) -> Vec<LogRecord> {
    let mut records: Vec<LogRecord> = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes(bytes_at(header, 0)) as usize;
        let crc = u32::from_le_bytes(bytes_at(header, 4));
        let seq = u64::from_le_bytes(bytes_at(header, 8));
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break; // cut short: a torn last record
        };
        let follows = records
            .last()
            .is_none_or(|last| last.seq.checked_add(1) == Some(seq));
        if !follows || checksum(stretch, seq, payload) != crc {
            break;
        }
        records.push(LogRecord {
            seq,
            payload: payload.to_vec(),
        });
        at += HEADER + len;
    }
    records
}

/// The `N` bytes of `header` from `at` (the header is [`HEADER`] bytes long).
fn bytes_at<const N: usize>(header: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&header[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(log: &mut RedoLog, seq: u64, payload: &[u8]) {
        let mut frame = vec![0; HEADER];
        frame.extend_from_slice(payload);
        log.append(seq, &mut frame).expect("append");
    }

    fn seqs(log: &RedoLog) -> Vec<u64> {
        log.read().expect("read").iter().map(|r| r.seq).collect()
    }

    /// A new log of stretch 7 in a temp dir (kept alive by the first value).
    fn fresh_log() -> (tempfile::TempDir, PathBuf, RedoLog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.wal");
        let log = RedoLog::open(&path, 7).expect("open");
        (dir, path, log)
    }

    #[test]
    fn records_read_back_in_order_with_their_payloads() {
        let (_dir, _, mut log) = fresh_log();
        write(&mut log, 1, b"one");
        write(&mut log, 2, b"");
        write(&mut log, 3, b"three");
        let read = log.read().expect("read");
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].payload, b"one");
        assert_eq!(read[1].payload, b"");
        assert_eq!(
            (read[2].seq, read[2].payload.as_slice()),
            (3, &b"three"[..])
        );
        // A reopened log reads the same, and writes from the start again.
        let again = RedoLog::open(log.path(), 7).expect("reopen");
        assert_eq!(seqs(&again), vec![1, 2, 3]);
        assert_eq!(again.stretch_bytes(), 0);
    }

    #[test]
    fn a_new_stretch_hides_the_older_records_after_it() {
        let (_dir, path, mut log) = fresh_log();
        for seq in 1..=5 {
            write(&mut log, seq, b"an older stretch");
        }
        log.restart(8);
        write(&mut log, 6, b"new");
        write(&mut log, 7, b"new");
        // Records 3..=5 are still in the file, past the new ones, but belong to stretch 7.
        assert_eq!(seqs(&log), vec![6, 7]);
        // Read as stretch 7 (a file whose last checkpoint was before stretch 8 began),
        // the log is empty: its first record is stretch 8's.
        assert!(seqs(&RedoLog::open(&path, 7).expect("open")).is_empty());
    }

    #[test]
    fn a_failed_append_leaves_the_next_record_where_it_would_have_gone() {
        let (_dir, _, mut log) = fresh_log();
        write(&mut log, 1, b"kept");
        // A frame too short to hold its header fails before anything is written.
        assert!(log.append(2, &mut [0u8; 3]).is_err());
        write(&mut log, 2, b"next");
        assert_eq!(seqs(&log), vec![1, 2]);
    }

    #[test]
    fn a_torn_or_foreign_record_ends_the_chain() {
        let (_dir, path, mut log) = fresh_log();
        write(&mut log, 1, b"kept");
        write(&mut log, 2, b"torn by a crash");
        let full = std::fs::read(&path).expect("read");
        // Cut the second record short, then flip a byte of it instead.
        std::fs::write(&path, &full[..full.len() - 3]).expect("cut");
        assert_eq!(seqs(&RedoLog::open(&path, 7).expect("open")), vec![1]);
        let mut flipped = full.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).expect("flip");
        assert_eq!(seqs(&RedoLog::open(&path, 7).expect("open")), vec![1]);
        // Another stretch's log reads as empty.
        std::fs::write(&path, &full).expect("restore");
        assert!(seqs(&RedoLog::open(&path, 8).expect("open")).is_empty());
    }

    #[test]
    fn a_batch_frame_parses_back_to_its_entries_and_ids() {
        let entries: [&[u8]; 3] = [b"ingest", b"", b"outcome"];
        let frame = BatchFrame::new([3, 4], &entries).finish(&[7, u128::MAX]);
        let batch = parse(&frame[HEADER..]).expect("parses");
        assert_eq!(batch.seqs, [3, 4]);
        assert_eq!(batch.entries, entries);
        assert_eq!(batch.ids, vec![7, u128::MAX]);
        // Anything cut or added does not parse.
        assert!(parse(&frame[HEADER..frame.len() - 1]).is_none());
        let mut longer = frame[HEADER..].to_vec();
        longer.push(0);
        assert!(parse(&longer).is_none());
        assert!(parse(&[]).is_none());
    }
}
