//! Whose turn it is: the webhooks that have due work but wait for a free worker, served
//! round-robin across users and, within a user, across that user's webhooks.
//!
//! Without turns, a freed worker went to whichever waiting webhook sorted first (the
//! oldest), so two old webhooks with long backlogs to a slow receiver kept every worker
//! and a newer webhook's one delivery waited behind both backlogs. With turns, a webhook
//! that gets a worker goes to the back of its user's line, and a user who got a worker goes
//! to the back of the users' line: a webhook waits at most one attempt per competing user
//! (and, within its user, per competing webhook).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::model::WebhookId;

#[derive(Default)]
pub struct Turns {
    /// Users with at least one waiting webhook, in the order they will be served.
    users: VecDeque<Arc<str>>,
    /// Each waiting user's webhooks, in the order they will be served.
    lines: HashMap<Arc<str>, VecDeque<WebhookId>>,
    /// Every webhook in some line (a webhook waits in one place only).
    waiting: HashSet<WebhookId>,
}

impl Turns {
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Puts `webhook` at the back of `user`'s line, unless it is already waiting.
    pub fn wait(&mut self, user: &Arc<str>, webhook: WebhookId) {
        if !self.waiting.insert(webhook) {
            return;
        }
        let line = self.lines.entry(Arc::clone(user)).or_default();
        if line.is_empty() {
            self.users.push_back(Arc::clone(user));
        }
        line.push_back(webhook);
    }

    /// The webhook whose turn it is: the first of the first user's line. The user goes
    /// to the back of the users' line if it has more webhooks waiting.
    pub fn take_turn(&mut self) -> Option<WebhookId> {
        let user = self.users.pop_front()?;
        let line = self.lines.get_mut(&user)?;
        let webhook = line.pop_front()?;
        if line.is_empty() {
            self.lines.remove(&user);
        } else {
            self.users.push_back(user);
        }
        self.waiting.remove(&webhook);
        Some(webhook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(n: usize) -> Vec<WebhookId> {
        (0..n).map(|_| WebhookId::generate()).collect()
    }

    #[test]
    fn users_take_turns_then_their_webhooks_do() {
        let (alice, bob): (Arc<str>, Arc<str>) = (Arc::from("alice"), Arc::from("bob"));
        let h = hooks(3);
        let mut turns = Turns::default();
        turns.wait(&alice, h[0]);
        turns.wait(&alice, h[1]);
        turns.wait(&alice, h[0]); // already waiting: keeps its place
        turns.wait(&bob, h[2]);
        assert_eq!(turns.take_turn(), Some(h[0]));
        assert_eq!(
            turns.take_turn(),
            Some(h[2]),
            "bob's turn before alice's second webhook"
        );
        turns.wait(&alice, h[0]); // served, still has work: back of alice's line
        assert_eq!(turns.take_turn(), Some(h[1]));
        assert_eq!(turns.take_turn(), Some(h[0]));
        assert_eq!(turns.take_turn(), None);
        assert!(turns.is_empty());
    }
}
