//! A test observer that records every event, for asserting on progress and messages.

use std::sync::Mutex;

use crate::observer::{Event, Observer};

#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// The `Info` messages, in order.
    pub fn infos(&self) -> Vec<String> {
        let events = self.events.lock().unwrap();
        events.iter().filter_map(|e| if let Event::Info(m) = e { Some(m.clone()) } else { None }).collect()
    }

    /// The total `TaskAdvance` of task `id`.
    pub fn advanced(&self, id: &str) -> u64 {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .map(|e| if let Event::TaskAdvance { id: i, n } = e { if *i == id { *n } else { 0 } } else { 0 })
            .sum()
    }
}

impl Observer for Recorder {
    fn event(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}
