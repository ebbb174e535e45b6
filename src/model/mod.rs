//! The networks, each with pluggable activation sites and one trait ([`Net`]) that the
//! training loop sees: CIFAR ResNet-(6n+2) whose every activation site holds its own instance
//! of an activation, the Vision Transformer (`vit`), the character GPT (`gpt`) and the
//! translation encoder-decoder (`seq2seq`), built from the shared pieces of `transformer`, plus the PyTorch-compatible naming of their weights.

pub mod activation;
pub mod cell;
pub mod gpt;
pub mod init;
pub mod layers;
pub mod net;
pub mod network;
pub mod resnet;
pub mod seq2seq;
pub mod state;
pub mod transformer;
pub mod vit;

pub use activation::Activation;
pub use activation::Site;
pub use cell::MixedCell;
pub use gpt::{Gpt, GptSize};
pub use net::Net;
pub use network::{Arch, Network, Task};
pub use resnet::ResNet;
pub use seq2seq::{Seq2Seq, Seq2SeqSize};
pub use vit::{Mlp, Vit, VitSize};
