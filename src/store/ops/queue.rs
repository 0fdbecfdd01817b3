//! What the scheduler reads: which webhooks exist, and a webhook's next queue entries.

use std::collections::{HashMap, HashSet};

use redb::{ReadTransaction, ReadableTable};

use super::attempts::AttemptInputs;
use super::{StoreError, load, meta_get};
use crate::model::{DeliveryId, Millis, Ordering, WebhookId};
use crate::store::records::WebhookRecord;
use crate::store::tables::*;

/// Every enabled webhook (the scheduler's starting point after a restart).
pub fn enabled_webhooks(rtx: &ReadTransaction) -> Result<Vec<WebhookId>, StoreError> {
    let hooks = rtx.open_table(WEBHOOKS)?;
    let mut ids = Vec::new();
    for entry in hooks.iter()? {
        let (id, _) = entry?;
        if let Some(hook) = load::<u128, WebhookRecord>(&hooks, id.value())?
            && hook.enabled
        {
            ids.push(hook.id);
        }
    }
    Ok(ids)
}

/// What a look at a queue is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LookFor {
    /// Sending what is due: a store far from hookd (PostgreSQL) reads what the attempts
    /// need in the same statement ([`Peek::loaded`]), so that a delivery does not cost a
    /// round trip of its own. redb's worker reads it from the file, as before.
    Sending,
    /// Planning only (moving entries, finding the next due time).
    Planning,
}

/// A look at the head of one webhook's queue.
pub struct Peek {
    /// `None` when the webhook no longer exists.
    pub webhook: Option<WebhookRecord>,
    /// Up to `max` deliveries due at `now`, oldest due first, not in `skip`.
    pub due: Vec<DeliveryId>,
    /// The seqs of `due`, in its order, where the store's queue names deliveries by seq
    /// (redb); empty otherwise. The scheduler keeps them with its claims ([`Claimed`]).
    pub seqs: Vec<u64>,
    /// The due time of the first entry after those: in the future, or `now` when `max`
    /// cut the list short.
    pub next: Option<Millis>,
    /// What the attempts of some of `due` need, read with the look ([`LookFor::Sending`]
    /// on PostgreSQL); a worker reads the others itself (`attempts::load_for_attempt`).
    pub loaded: Vec<AttemptInputs>,
}

impl Peek {
    /// A look that found nothing to send and no time to look again.
    pub fn nothing(webhook: Option<WebhookRecord>) -> Peek {
        Peek {
            webhook,
            due: Vec::new(),
            seqs: Vec::new(),
            next: None,
            loaded: Vec::new(),
        }
    }

    /// Takes what the look found to send, each with its seq where the store gave one.
    pub fn take_due(&mut self) -> impl Iterator<Item = (DeliveryId, Option<u64>)> + use<> {
        let seqs = std::mem::take(&mut self.seqs);
        std::mem::take(&mut self.due)
            .into_iter()
            .zip(seqs.into_iter().map(Some).chain(std::iter::repeat(None)))
    }

    /// Takes what was read with the look for `delivery`'s attempt, if anything.
    pub fn take_loaded(&mut self, delivery: DeliveryId) -> Option<Box<AttemptInputs>> {
        let at = self.loaded.iter().position(|l| l.delivery.id == delivery)?;
        Some(Box::new(self.loaded.swap_remove(at)))
    }
}

/// A webhook's claimed deliveries (sent and not yet recorded, read ahead, or cooling off
/// after a record that failed), which a look passes over. Each is known by its id, and by
/// its seq where the look that found it gave one ([`Peek::seqs`]): redb's queue names
/// deliveries by seq, so its look passes over a claimed entry without reading which
/// delivery it is, and a look re-reads the claimed entries at the head of the queue
/// every time (reading which delivery each is cost `bench b` about 8 % more CPU per event;
/// BENCHMARKS.md, "The compact queue").
#[derive(Clone, Debug, Default)]
pub struct Claimed {
    ids: HashMap<DeliveryId, Option<u64>>,
    seqs: HashSet<u64>,
}

impl Claimed {
    pub fn insert(&mut self, id: DeliveryId, seq: Option<u64>) {
        if let Some(old) = self.ids.insert(id, seq).flatten() {
            self.seqs.remove(&old);
        }
        if let Some(seq) = seq {
            self.seqs.insert(seq);
        }
    }

    /// Ends the claim; answers whether there was one.
    pub fn remove(&mut self, id: &DeliveryId) -> bool {
        match self.ids.remove(id) {
            Some(seq) => {
                if let Some(seq) = seq {
                    self.seqs.remove(&seq);
                }
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, id: &DeliveryId) -> bool {
        self.ids.contains_key(id)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn ids(&self) -> impl Iterator<Item = DeliveryId> + '_ {
        self.ids.keys().copied()
    }

    /// Whether every claim is known by its seq, so that a seq not in [`Claimed::has_seq`]
    /// is a delivery not claimed.
    fn all_by_seq(&self) -> bool {
        self.seqs.len() == self.ids.len()
    }

    fn has_seq(&self, seq: u64) -> bool {
        self.seqs.contains(&seq)
    }
}

/// What the scheduler may send of `webhook` now. `skip`: its claimed deliveries (under
/// way, or their outcome not recorded yet).
///
/// A FIFO webhook sends its head only (`ops::order`), and only while nothing of it is
/// claimed: one delivery at a time, in queue order, whatever the others' due times; the
/// head's own due time (its retry schedule, a rate-limit slot) holds the whole line.
/// Any other webhook sends whatever is due, oldest due first.
pub fn peek(
    rtx: &ReadTransaction,
    webhook: WebhookId,
    now: Millis,
    skip: &Claimed,
    max: usize,
) -> Result<Peek, StoreError> {
    let record = load::<u128, WebhookRecord>(&rtx.open_table(WEBHOOKS)?, webhook.0)?;
    if record
        .as_ref()
        .is_some_and(|w| w.ordering == Ordering::Fifo)
    {
        let (due, next) = if !skip.is_empty() {
            // The claimed one's recorded outcome asks for the next look.
            (Vec::new(), None)
        } else {
            head_due(super::order::head(rtx, webhook)?, now, max)
        };
        return Ok(Peek {
            webhook: record,
            due,
            seqs: Vec::new(),
            next,
            loaded: Vec::new(),
        });
    }
    let Some(number) = super::filter::number_of(&rtx.open_table(WEBHOOK_NUMBERS)?, webhook)? else {
        // A webhook with no number has nothing queued (`store::tables`).
        return Ok(Peek::nothing(record));
    };
    let queue = rtx.open_table(QUEUE)?;
    let by_seq = rtx.open_table(DELIVERIES_BY_SEQ)?;
    let skip_by_seq = skip.all_by_seq();
    let entries = queue
        .range((number, 0u64, 0u64)..=(number, u64::MAX, u64::MAX))?
        .map(|entry| -> Result<_, StoreError> {
            let (_, at, seq) = entry?.0.value();
            if skip_by_seq && skip.has_seq(seq) {
                return Ok(None);
            }
            let Some(id) = by_seq.get(seq)? else {
                // An entry without its delivery (none with the invariants kept).
                return Ok(None);
            };
            Ok(Some(((DeliveryId(id.value()), seq), Millis::from_key(at))))
        })
        .filter_map(Result::transpose);
    let (due, next) = due_among(entries, now, |(id, _)| skip.contains(id), max)?;
    let (due, seqs) = due.into_iter().unzip();
    Ok(Peek {
        webhook: record,
        due,
        seqs,
        next,
        loaded: Vec::new(),
    })
}

/// The rule of a look at a FIFO queue with nothing claimed, on either store: its `head`
/// (the first of its line and when it is due) goes if it is due at `now` and `max`
/// allows; otherwise the next look is when it is due (`now` at the earliest).
pub fn head_due(
    head: Option<(DeliveryId, Millis)>,
    now: Millis,
    max: usize,
) -> (Vec<DeliveryId>, Option<Millis>) {
    match head {
        None => (Vec::new(), None),
        Some((head, at)) if at <= now && max > 0 => (vec![head], None),
        Some((_, at)) => (Vec::new(), Some(at.max(now))),
    }
}

/// The rule of a look at a queue that is not FIFO, on either store: of `entries` (the
/// webhook's queue, each delivery with its due time, oldest due first), the ones due at
/// `now` that are not `claimed`, at most `max`; and when to look next: when the first one
/// not yet due is, `now` when more than `max` are due, never (`None`) when the queue
/// ends first. Stops reading at the first entry it does not need.
pub fn due_among<T, E>(
    entries: impl IntoIterator<Item = Result<(T, Millis), E>>,
    now: Millis,
    claimed: impl Fn(&T) -> bool,
    max: usize,
) -> Result<(Vec<T>, Option<Millis>), E> {
    let mut due = Vec::new();
    for entry in entries {
        let (id, at) = entry?;
        if claimed(&id) {
            continue;
        }
        if at.as_key() > now.as_key() {
            return Ok((due, Some(at)));
        }
        if due.len() == max {
            return Ok((due, Some(now)));
        }
        due.push(id);
    }
    Ok((due, None))
}

/// Gauges for `/metrics` that the store keeps exactly: queue depth and webhooks by
/// status. Reading them is a few point lookups, whatever the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueGauges {
    pub depth: u64,
    pub healthy: u64,
    pub failing: u64,
    pub disabled: u64,
}

pub fn gauges(rtx: &ReadTransaction) -> Result<QueueGauges, StoreError> {
    use redb::ReadableTableMetadata;
    let meta = rtx.open_table(META)?;
    Ok(QueueGauges {
        // redb keeps each table's length in its root: O(1), and exact.
        depth: rtx.open_table(QUEUE)?.len()?,
        healthy: meta_get(&meta, WEBHOOKS_HEALTHY)?,
        failing: meta_get(&meta, WEBHOOKS_FAILING)?,
        disabled: meta_get(&meta, WEBHOOKS_DISABLED)?,
    })
}

/// Where a count of due deliveries goes on: the first queue key it has not looked at.
pub type DueCursor = (u32, u64, u64);

/// One bounded step of counting the queue entries due at `now` (the due backlog, which
/// depends on the time and so cannot be a counter): reads at most about `budget` queue
/// entries from `from` on, webhook by webhook, and answers how many were due and where
/// the next step starts (`None` when the queue is done). The caller sums the steps, each
/// in its own read transaction; the total is then a little stale, which a gauge may be.
pub fn count_due(
    rtx: &ReadTransaction,
    now: Millis,
    from: DueCursor,
    budget: usize,
) -> Result<(u64, Option<DueCursor>), StoreError> {
    let queue = rtx.open_table(QUEUE)?;
    let now = now.as_key();
    let mut due = 0;
    let mut read = 0;
    let mut cursor = from;
    loop {
        if read >= budget {
            return Ok((due, Some(cursor)));
        }
        // The first entry of the next webhook with anything queued.
        let Some(first) = queue.range(cursor..)?.next() else {
            return Ok((due, None));
        };
        let (webhook, at, id) = first?.0.value();
        read += 1;
        if at <= now {
            for entry in queue.range((webhook, at, id)..=(webhook, now, u64::MAX))? {
                let (webhook, at, id) = entry?.0.value();
                due += 1;
                read += 1;
                if read >= budget {
                    return Ok((due, successor((webhook, at, id))));
                }
            }
        }
        match webhook.checked_add(1) {
            Some(next) => cursor = (next, 0, 0),
            None => return Ok((due, None)),
        }
    }
}

/// The queue key right after `key`, if any.
fn successor((webhook, at, id): DueCursor) -> Option<DueCursor> {
    if let Some(id) = id.checked_add(1) {
        Some((webhook, at, id))
    } else if let Some(at) = at.checked_add(1) {
        Some((webhook, at, 0))
    } else {
        webhook.checked_add(1).map(|w| (w, 0, 0))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::due_among;
    use crate::model::{DeliveryId, Millis};

    fn look(
        queue: &[(u128, i64)],
        now: i64,
        skip: &[u128],
        max: usize,
    ) -> (Vec<u128>, Option<i64>) {
        let entries = queue
            .iter()
            .map(|&(id, at)| Ok::<_, Infallible>((DeliveryId(id), Millis(at))));
        let claimed = |id: &DeliveryId| skip.contains(&id.0);
        let Ok((due, next)) = due_among(entries, Millis(now), claimed, max);
        (due.iter().map(|d| d.0).collect(), next.map(|m| m.0))
    }

    #[test]
    fn claims_known_by_seq_are_passed_over_like_claims_known_by_id() {
        use super::{Claimed, peek};
        use crate::store::ops::events;
        let (_dir, store, hook) = crate::store::ops::test_store_with_webhook();
        for i in 0..5 {
            let new = events::test_event(&format!("e{i}"), Millis(1_000));
            store
                .write_blocking(move |tx| events::ingest(tx, new, Millis(1_000)))
                .unwrap();
        }
        let look = |skip: &Claimed| {
            store
                .read(|r| peek(r, hook, Millis(2_000), skip, 2))
                .unwrap()
        };
        let first = look(&Claimed::default());
        assert_eq!((first.due.len(), first.seqs.len()), (2, 2));
        assert_eq!(first.next, Some(Millis(2_000)), "more are due");
        let (mut by_seq, mut by_id) = (Claimed::default(), Claimed::default());
        for (id, seq) in first.due.iter().zip(&first.seqs) {
            by_seq.insert(*id, Some(*seq));
            by_id.insert(*id, None);
        }
        let (a, b) = (look(&by_seq), look(&by_id));
        assert_eq!(a.due, b.due);
        assert_eq!(a.seqs, b.seqs);
        assert!(
            a.due.iter().all(|id| !first.due.contains(id)),
            "claims passed over"
        );
        // A claim that ends frees its seq too.
        assert!(by_seq.remove(&first.due[0]));
        assert_eq!(look(&by_seq).due[0], first.due[0]);
        store.close(std::time::Duration::ZERO);
    }

    #[test]
    fn a_look_takes_the_unclaimed_due_entries_and_says_when_to_look_again() {
        let queue = [(1, 10), (2, 20), (3, 30), (4, 40)];
        // Everything due, room for all: the queue's end means no next look of its own.
        assert_eq!(look(&queue, 50, &[], 8), (vec![1, 2, 3, 4], None));
        // The first one not yet due sets the next look.
        assert_eq!(look(&queue, 25, &[], 8), (vec![1, 2], Some(30)));
        // Claimed ones are passed over, not counted against `max`.
        assert_eq!(look(&queue, 25, &[1], 8), (vec![2], Some(30)));
        // More due than `max`: look again at once.
        assert_eq!(look(&queue, 50, &[2], 2), (vec![1, 3], Some(50)));
        // An entry due exactly now is due.
        assert_eq!(look(&queue, 20, &[], 8), (vec![1, 2], Some(30)));
        assert_eq!(look(&[], 20, &[], 8), (vec![], None));
    }
}
