//! What the endpoint hands the application at a time: a [`Batch`] of events, and the shared
//! pages that small inbound message bodies were read into.
//!
//! Handing every inbound message over in memory of its own costs more than the rest of a small
//! message's trip once JavaScript holds it (per message: an external Buffer's backing store in
//! V8, a finalizer run later from an immediate, a sweep on a worker thread, an allocation and a
//! free). A body of at most [`SMALL_BODY`] bytes that quiche holds completely is read instead,
//! in one piece, straight into a page shared with the other small bodies of the same batch: the
//! page becomes one Buffer, and each message a view of it. A body is still copied exactly once
//! out of quiche either way; larger bodies, and bodies that arrive over several turns, keep a
//! buffer of their own.
//!
//! A page is filled only while its batch is being built (its capacity is reserved up front,
//! so it is never moved), then cut to what it holds and handed over whole: a view handed out
//! stays valid and unchanged. The price: a message the application keeps after answering keeps
//! its whole page (at most [`PAGE_BYTES`]) alive.
use super::endpoint::Event;

/// Capacity of one page.
pub const PAGE_BYTES: usize = 64 * 1024;
/// Largest message body read into a shared page.
pub const SMALL_BODY: usize = 16 * 1024;

/// Where a message body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// In a buffer of its own.
    Owned(Vec<u8>),
    /// `len` bytes at `off` of page `page` of the same [`Batch`].
    Paged { page: u32, off: u32, len: u32 },
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::Owned(v) => v.len(),
            Payload::Paged { len, .. } => *len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The pages of the batch being built.
#[derive(Debug, Default)]
pub struct Pages {
    pages: Vec<Vec<u8>>,
    /// Pages never span the event indexes `split`, `2 * split`, `4 * split`, ... (0: none).
    split: usize,
    /// Index of the first event with a body in the last page.
    last_first_event: usize,
}

impl Pages {
    /// The driver may hand a batch over in parts, split at event `n` or at `n` times a power of
    /// two: no page holds bodies from both sides of those points (see [`Batch::split_off`]).
    pub fn split_at(&mut self, n: usize) {
        self.split = n;
    }

    /// Which part, between the split points, event `event` is in.
    fn part(&self, event: usize) -> u32 {
        if self.split == 0 || event < self.split {
            0
        } else {
            (event / self.split).ilog2() + 1
        }
    }

    /// A page with room for `len` more bytes (`len` ≤ [`SMALL_BODY`]) for the body of the
    /// batch's event number `event`, and the page's index. Append at most `len` bytes.
    pub fn room(&mut self, len: usize, event: usize) -> (u32, &mut Vec<u8>) {
        debug_assert!(len <= SMALL_BODY);
        let full = self
            .pages
            .last()
            .is_none_or(|p| p.capacity() - p.len() < len);
        if full || self.part(event) != self.part(self.last_first_event) {
            self.pages.push(Vec::with_capacity(PAGE_BYTES));
            self.last_first_event = event;
        }
        let index = self.pages.len() - 1;
        (index as u32, &mut self.pages[index])
    }

    /// The pages, each cut to what it holds (in place: the rest of its allocation is freed).
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        self.last_first_event = 0;
        let mut pages = std::mem::take(&mut self.pages);
        for p in &mut pages {
            p.shrink_to_fit();
        }
        pages
    }
}

/// Events in the order the endpoint produced them, with the pages their paged payloads are in.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub pages: Vec<Vec<u8>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// True when every event is of the same connection.
    pub fn single_connection(&self) -> bool {
        let mut conns = self.events.iter().map(Event::conn);
        let first = conns.next();
        conns.all(|c| Some(c) == first)
    }

    /// Keep the first `n` events; return the others as a batch of their own, with the pages
    /// their bodies are in. The endpoint starts a new page at its split points (see
    /// [`Pages::split_at`]); should a page still hold bodies of both sides, nothing is split.
    pub fn split_off(&mut self, n: usize) -> Batch {
        if n >= self.events.len() {
            return Batch::default();
        }
        let pages_before = self.events[..n]
            .iter()
            .filter_map(page_of)
            .max()
            .map_or(0, |p| p + 1);
        let first_after = self.events[n..].iter().filter_map(page_of).min();
        if first_after.is_some_and(|p| p < pages_before) {
            return Batch::default();
        }
        let mut rest = Batch {
            events: self.events.split_off(n),
            pages: self.pages.split_off(pages_before as usize),
        };
        rest.renumber(pages_before, false);
        rest
    }

    /// Add `other`'s events after these, with its pages.
    pub fn append(&mut self, mut other: Batch) {
        other.renumber(self.pages.len() as u32, true);
        self.events.append(&mut other.events);
        self.pages.append(&mut other.pages);
    }

    /// Shift every page index by `by`, up (`add`) or down.
    fn renumber(&mut self, by: u32, add: bool) {
        if by == 0 {
            return;
        }
        for e in &mut self.events {
            if let Event::Message {
                data: Payload::Paged { page, .. },
                ..
            } = e
            {
                *page = if add { *page + by } else { *page - by };
            }
        }
    }

    /// The bytes of a payload of this batch.
    pub fn bytes<'a>(&'a self, p: &'a Payload) -> &'a [u8] {
        match p {
            Payload::Owned(v) => v,
            Payload::Paged { page, off, len } => {
                let (off, len) = (*off as usize, *len as usize);
                &self.pages[*page as usize][off..off + len]
            }
        }
    }

    /// The events with every payload in a buffer of its own (one copy per paged message), for
    /// consumers that keep events apart from their batch.
    pub fn into_owned(self) -> Vec<Event> {
        let Batch { events, pages } = self;
        events
            .into_iter()
            .map(|e| match e {
                Event::Message {
                    conn,
                    stream,
                    data: Payload::Paged { page, off, len },
                } => {
                    let (off, len) = (off as usize, len as usize);
                    Event::Message {
                        conn,
                        stream,
                        data: Payload::Owned(pages[page as usize][off..off + len].to_vec()),
                    }
                }
                e => e,
            })
            .collect()
    }
}

/// The page an event's body is in, if any.
fn page_of(e: &Event) -> Option<u32> {
    match e {
        Event::Message {
            data: Payload::Paged { page, .. },
            ..
        } => Some(*page),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(pages: &mut Pages, event: usize, body: &[u8]) -> Event {
        let (page, buf) = pages.room(body.len(), event);
        let off = buf.len() as u32;
        buf.extend_from_slice(body);
        Event::Message {
            conn: 1,
            stream: event as u64,
            data: Payload::Paged {
                page,
                off,
                len: body.len() as u32,
            },
        }
    }

    fn bodies(b: &Batch) -> Vec<Vec<u8>> {
        b.events
            .iter()
            .map(|e| match e {
                Event::Message { data, .. } => b.bytes(data).to_vec(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn batch_of(split: usize, sizes: &[usize]) -> (Batch, Vec<Vec<u8>>) {
        let mut pages = Pages::default();
        pages.split_at(split);
        let want: Vec<Vec<u8>> = (0..sizes.len()).map(|i| vec![i as u8; sizes[i]]).collect();
        let events = want
            .iter()
            .enumerate()
            .map(|(i, body)| message(&mut pages, i, body))
            .collect();
        (
            Batch {
                events,
                pages: pages.take(),
            },
            want,
        )
    }

    #[test]
    fn bodies_share_pages_cut_to_size() {
        let (b, want) = batch_of(0, &[SMALL_BODY; 9]);
        assert_eq!(b.pages.len(), 3, "four small bodies per page");
        assert!(b.pages.iter().all(|p| p.capacity() == p.len()));
        assert_eq!(bodies(&b), want);
    }

    #[test]
    fn a_split_batch_keeps_every_body_and_no_page_spans_it() {
        let (mut first, want) = batch_of(4, &[1000; 7]);
        assert_eq!(first.pages.len(), 2, "a new page at the split point");
        let rest = first.split_off(4);
        assert_eq!((first.pages.len(), rest.pages.len()), (1, 1));
        assert_eq!(bodies(&first), want[..4]);
        assert_eq!(bodies(&rest), want[4..]);
        let mut joined = first;
        joined.append(rest);
        assert_eq!(bodies(&joined), want);
        let owned = joined.into_owned();
        assert!(owned
            .iter()
            .zip(&want)
            .all(|(e, w)| matches!(e, Event::Message { data: Payload::Owned(v), .. } if v == w)));
    }

    #[test]
    fn pages_start_at_every_split_point() {
        let (b, want) = batch_of(4, &[100; 40]);
        // Parts: 0..4, 4..8, 8..16, 16..32, 32..40.
        assert_eq!(b.pages.len(), 5);
        for at in [4, 8, 16, 32] {
            let mut first = Batch {
                events: b.events.clone(),
                pages: b.pages.clone(),
            };
            let rest = first.split_off(at);
            assert_eq!(bodies(&first), want[..at], "split at {at}");
            assert_eq!(bodies(&rest), want[at..], "split at {at}");
        }
    }

    #[test]
    fn a_page_shared_across_the_split_is_not_split() {
        let (mut b, want) = batch_of(0, &[1000; 6]);
        assert!(b.split_off(3).is_empty());
        assert_eq!(bodies(&b), want);
    }
}
