//! Datasets and batches: CIFAR-10/100 in the official binary layout (download, MD5 check, safe
//! extraction), image folders with a decoded cache, seeded train/valid/test splits with
//! normalization statistics, and a background loader that augments and batches images.
//!
//! Reading order: [`ImageSet`] (what every source produces) → [`cifar`] and [`folder`] (the
//! sources) → [`split`] (what training asks for) → [`augment`] and [`loader`] (what the model
//! eats). [`synthetic`] writes small learnable datasets for tests and examples. [`text`] is
//! the character text of the language models: vocabulary, splits and windows.

pub mod archive;
pub mod augment;
pub mod bpe;
pub mod cifar;
pub mod download;
pub mod folder;
pub mod folder_archive;
mod folder_cache;
pub mod image_set;
pub mod loader;
pub mod parallel;
pub mod plan;
pub mod split;
pub mod synthetic;
pub mod text;

#[cfg(test)]
mod test_observer;

pub use archive::{extract_archive, is_archive, verify_archive};
pub use cifar::{CifarKind, find_cifar_folder, load_cifar, prepare_cifar, read_cifar};
pub use download::fetch;
pub use folder::load_folder;
pub use folder_archive::prepare_folder_archive;
pub use image_set::{IMAGE_BYTES, IMAGE_SIDE, ImageSet};
pub use loader::{Batch, Loader, LoaderConfig, batches};
pub use split::{DatasetSpec, Normalization, SplitConfig, Splits, load_splits};
