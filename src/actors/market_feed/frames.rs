//! Frames decoded into one batch on their way into the feed: WebSocket text or replayed lines
//! through the [`FeedDecoder`], with the recycled vectors of an earlier batch ([`Spent`]).

use crate::core::kraken::decode::{FeedCounters, FeedDecoder, FeedNotice};
use crate::core::market::{FrameMark, MarketEvent};
use crate::core::time::EventTime;

/// A frame as the decoder reads it: WebSocket text as received, or a replayed line.
pub(super) trait FrameText {
    fn frame_text(&self) -> std::borrow::Cow<'_, str>;
}

impl FrameText for tokio_tungstenite::tungstenite::Utf8Bytes {
    fn frame_text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self.as_str())
    }
}

impl FrameText for crate::sources::replay::Line {
    fn frame_text(&self) -> std::borrow::Cow<'_, str> {
        self.text()
    }
}

/// Emptied vectors of a batch the pipeline is done with, for the replay reader to fill again.
#[derive(Default)]
pub(super) struct Spent {
    pub(super) events: Vec<MarketEvent>,
    pub(super) marks: Vec<FrameMark>,
    pub(super) counters: Vec<FeedCounters>,
}

/// Frames decoded into one batch, not yet admitted to the feed ([`super::drive::admit_frames`]).
pub(super) struct DecodedFrames {
    pub(super) events: Vec<MarketEvent>,
    /// Where each frame's events end, and its event time.
    pub(super) marks: Vec<FrameMark>,
    /// The decoder's counters after each frame.
    pub(super) counters: Vec<FeedCounters>,
    pub(super) notices: Vec<FeedNotice>,
    /// The decoder's last event time after the last frame.
    pub(super) last_time: EventTime,
}

/// Decodes frames into one batch.
pub(super) fn decode_lines<F: FrameText>(
    decoder: &mut FeedDecoder,
    frames: &[F],
    reuse: Spent,
) -> DecodedFrames {
    let Spent { mut events, mut marks, mut counters } = reuse;
    // Most frames carry one event: room for that and some more, so the vector rarely grows.
    events.reserve(frames.len() + frames.len() / 4);
    marks.reserve(frames.len());
    counters.reserve(frames.len());
    let mut notices = Vec::new();
    for f in frames {
        let before = events.len();
        decoder.decode(&f.frame_text(), &mut events, &mut notices);
        let time = match events.get(before..).and_then(|e| e.last()) {
            Some(e) => e.time(),
            None => decoder.last_time(),
        };
        marks.push(FrameMark { end: events.len(), time });
        counters.push(decoder.counters().clone());
    }
    DecodedFrames { events, marks, counters, notices, last_time: decoder.last_time() }
}
