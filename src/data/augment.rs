//! Standard CIFAR augmentation and normalization of single images: zero-pad 4 pixels on each
//! side, take a random 32×32 crop, flip horizontally with probability 1/2 (on the uint8 image,
//! so the padding normalizes to (0 - mean) / std exactly like torchvision's pad-then-normalize),
//! then map bytes to normalized floats.
//!
//! The random parameters of an image depend only on (seed, epoch, image index), never on
//! batch order or thread scheduling, so every epoch is reproducible on its own.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::image_set::{IMAGE_BYTES, IMAGE_SIDE};
use super::split::Normalization;

/// Zero padding on each side before cropping.
pub const PAD: usize = 4;

/// Separates the augmentation random stream from the shuffling one for the same seed.
const AUGMENT_SALT: u64 = 0x6175_676d_656e_7421;

/// Where the 32×32 crop starts in the padded 40×40 image (`0..=8` each; 4 is the original
/// position) and whether the crop is then mirrored left-right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropFlip {
    pub x: usize,
    pub y: usize,
    pub flip: bool,
}

impl CropFlip {
    /// No change.
    pub const IDENTITY: CropFlip = CropFlip { x: PAD, y: PAD, flip: false };

    /// The parameters of image `index` in `epoch` of a run seeded with `seed`.
    pub fn draw(seed: u64, epoch: u64, index: usize) -> CropFlip {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ AUGMENT_SALT);
        rng.set_stream(epoch);
        rng.set_word_pos(index as u128 * 2);
        let v = rng.next_u64();
        let span = (2 * PAD + 1) as u64;
        CropFlip { x: (v % span) as usize, y: (v / span % span) as usize, flip: v >> 63 == 1 }
    }
}

/// Writes the crop (and flip) `p` of the zero-padded CHW image `src` into `out` (both
/// [`IMAGE_BYTES`] long).
pub fn crop_flip(src: &[u8], p: CropFlip, out: &mut [u8]) {
    let side = IMAGE_SIDE as isize;
    for c in 0..3 {
        let plane = &src[c * IMAGE_SIDE * IMAGE_SIDE..(c + 1) * IMAGE_SIDE * IMAGE_SIDE];
        for y in 0..side {
            let sy = y + p.y as isize - PAD as isize;
            let row = &mut out[(c * IMAGE_SIDE + y as usize) * IMAGE_SIDE..][..IMAGE_SIDE];
            if !(0..side).contains(&sy) {
                row.fill(0);
                continue;
            }
            for (x, value) in row.iter_mut().enumerate() {
                let cx = if p.flip { side - 1 - x as isize } else { x as isize };
                let sx = cx + p.x as isize - PAD as isize;
                *value = if (0..side).contains(&sx) { plane[(sy * side + sx) as usize] } else { 0 };
            }
        }
    }
}

/// A byte → normalized float table per channel.
pub struct NormTable {
    table: [[f32; 256]; 3],
}

impl NormTable {
    pub fn new(norm: &Normalization) -> NormTable {
        let mut table = [[0.0f32; 256]; 3];
        for (c, row) in table.iter_mut().enumerate() {
            for (v, out) in row.iter_mut().enumerate() {
                *out = (v as f32 / 255.0 - norm.mean[c]) / norm.std[c];
            }
        }
        NormTable { table }
    }

    /// Normalizes the CHW image `src` into `out` (both [`IMAGE_BYTES`] long).
    pub fn apply(&self, src: &[u8], out: &mut [f32]) {
        let plane = IMAGE_BYTES / 3;
        for c in 0..3 {
            let table = &self.table[c];
            for (o, &v) in out[c * plane..(c + 1) * plane].iter_mut().zip(&src[c * plane..(c + 1) * plane]) {
                *o = table[v as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixel (c, y, x) holds a distinct non-zero value.
    fn known_image() -> Vec<u8> {
        (0..IMAGE_BYTES).map(|i| (i % 250 + 1) as u8).collect()
    }

    fn px(img: &[u8], c: usize, y: usize, x: usize) -> u8 {
        img[(c * 32 + y) * 32 + x]
    }

    #[test]
    fn identity_keeps_the_image() {
        let src = known_image();
        let mut out = vec![0; IMAGE_BYTES];
        crop_flip(&src, CropFlip::IDENTITY, &mut out);
        assert_eq!(out, src);
    }

    #[test]
    fn flip_mirrors_rows() {
        let src = known_image();
        let mut out = vec![0; IMAGE_BYTES];
        crop_flip(&src, CropFlip { flip: true, ..CropFlip::IDENTITY }, &mut out);
        for (c, y, x) in [(0, 0, 0), (1, 5, 7), (2, 31, 31)] {
            assert_eq!(px(&out, c, y, x), px(&src, c, y, 31 - x));
        }
    }

    #[test]
    fn crop_shifts_and_pads_with_zeros() {
        let src = known_image();
        let mut out = vec![0; IMAGE_BYTES];
        // Crop starting at padded (x=0, y=8): content moves right by 4 and up by 4.
        crop_flip(&src, CropFlip { x: 0, y: 8, flip: false }, &mut out);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let expected = if x < 4 || y >= 28 { 0 } else { px(&src, c, y + 4, x - 4) };
                    assert_eq!(px(&out, c, y, x), expected, "({c},{y},{x})");
                }
            }
        }
        // Crop then flip: the zero columns end up on the right.
        crop_flip(&src, CropFlip { x: 0, y: 8, flip: true }, &mut out);
        assert_eq!(px(&out, 0, 0, 31), 0);
        assert_eq!(px(&out, 0, 0, 27), px(&src, 0, 4, 0));
        assert_eq!(px(&out, 0, 0, 0), px(&src, 0, 4, 27));
    }

    #[test]
    fn draws_are_deterministic_and_cover_the_range() {
        assert_eq!(CropFlip::draw(1, 2, 3), CropFlip::draw(1, 2, 3));
        let draws: Vec<CropFlip> = (0..2000).map(|i| CropFlip::draw(7, 0, i)).collect();
        assert!(draws.iter().all(|d| d.x <= 8 && d.y <= 8));
        for v in 0..=8 {
            assert!(draws.iter().any(|d| d.x == v) && draws.iter().any(|d| d.y == v));
        }
        let flips = draws.iter().filter(|d| d.flip).count();
        assert!((850..1150).contains(&flips), "{flips}");
        let other_epoch: Vec<CropFlip> = (0..2000).map(|i| CropFlip::draw(7, 1, i)).collect();
        assert_ne!(draws, other_epoch);
    }

    #[test]
    fn normalization_table_maps_bytes() {
        let norm = Normalization { mean: [0.5, 0.0, 1.0], std: [0.25, 1.0, 0.5] };
        let table = NormTable::new(&norm);
        let mut src = vec![0u8; IMAGE_BYTES];
        src[0] = 255;
        src[1024] = 51;
        let mut out = vec![0.0; IMAGE_BYTES];
        table.apply(&src, &mut out);
        assert!((out[0] - 2.0).abs() < 1e-6);
        assert!((out[1] + 2.0).abs() < 1e-6);
        assert!((out[1024] - 0.2).abs() < 1e-6);
        assert!((out[2048] + 2.0).abs() < 1e-6);
    }
}
