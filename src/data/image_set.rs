//! [`ImageSet`]: labelled 32×32 RGB images stored as raw bytes, the common currency of every
//! data source (CIFAR binaries, image folders) and of the loader.

/// Width and height of every image.
pub const IMAGE_SIDE: usize = 32;
/// Bytes in one image: 3 channel planes (R, G, B) of 32×32 bytes each (CHW layout).
pub const IMAGE_BYTES: usize = 3 * IMAGE_SIDE * IMAGE_SIDE;

/// Labelled images: `images` holds `len()` images of [`IMAGE_BYTES`] bytes each, in CHW order
/// (the R plane, then G, then B), exactly like a CIFAR record. `labels[i] < classes.len()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (the label range), which may exceed the labels actually present.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The `i`-th image as [`IMAGE_BYTES`] CHW bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// A new set holding the images at `idx`, in that order (indices may repeat).
    pub fn select(&self, idx: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(idx.len() * IMAGE_BYTES);
        for &i in idx {
            images.extend_from_slice(self.image(i));
        }
        ImageSet { images, labels: idx.iter().map(|&i| self.labels[i]).collect(), classes: self.classes.clone() }
    }
}

/// Converts an interleaved RGB image (HWC, `r g b r g b ...`) of 32×32 pixels to CHW planes.
pub fn chw_from_hwc(hwc: &[u8]) -> Vec<u8> {
    let plane = IMAGE_SIDE * IMAGE_SIDE;
    let mut chw = vec![0u8; IMAGE_BYTES];
    for (p, px) in hwc.chunks_exact(3).take(plane).enumerate() {
        for c in 0..3 {
            chw[c * plane + p] = px[c];
        }
    }
    chw
}

/// Converts CHW planes of a 32×32 image to interleaved RGB (HWC).
pub fn hwc_from_chw(chw: &[u8]) -> Vec<u8> {
    let plane = IMAGE_SIDE * IMAGE_SIDE;
    let mut hwc = vec![0u8; IMAGE_BYTES];
    for p in 0..plane {
        for c in 0..3 {
            hwc[p * 3 + c] = chw[c * plane + p];
        }
    }
    hwc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_images() -> ImageSet {
        let mut images = Vec::new();
        for v in [10u8, 20, 30] {
            images.extend(std::iter::repeat_n(v, IMAGE_BYTES));
        }
        ImageSet { images, labels: vec![0, 1, 2], classes: vec!["a".into(), "b".into(), "c".into()] }
    }

    #[test]
    fn image_and_select_pick_the_right_bytes() {
        let set = three_images();
        assert_eq!(set.len(), 3);
        assert_eq!(set.image(1)[0], 20);
        let picked = set.select(&[2, 0, 2]);
        assert_eq!(picked.len(), 3);
        assert_eq!(picked.labels, vec![2, 0, 2]);
        assert_eq!(picked.image(0), set.image(2));
        assert_eq!(picked.image(1), set.image(0));
        assert_eq!(picked.classes, set.classes);
    }

    #[test]
    fn layout_conversions_round_trip() {
        let chw: Vec<u8> = (0..IMAGE_BYTES).map(|i| (i % 251) as u8).collect();
        let hwc = hwc_from_chw(&chw);
        assert_eq!(&hwc[0..3], &[chw[0], chw[1024], chw[2048]]);
        assert_eq!(chw_from_hwc(&hwc), chw);
    }
}
