//! Searching for activation functions. `oneshot`: gradient-based cell searches (DARTS first
//! order so far) over a ResNet whose every activation site is a mixed cell.

pub mod oneshot;
