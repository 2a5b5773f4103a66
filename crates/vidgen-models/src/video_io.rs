//! Writing generated videos as animated GIFs.
//!
//! Videos are `[C, T, H, W]` tensors (one sample of a `[B, C, T, H, W]` batch) with values in
//! `[-1, 1]` (the range diffusion models are trained on); 1 channel is written as grey, 3 as RGB.

use crate::error::{ConfigError, ModelError};
use burn::tensor::{Tensor, backend::Backend};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Converts a `[C, T, H, W]` video in `[-1, 1]` to `T` RGB frames of `H·W·3` bytes.
///
/// # Panics
/// If `C` is not 1 or 3.
pub fn to_rgb_frames<B: Backend>(video: Tensor<B, 4>) -> (Vec<Vec<u8>>, usize, usize) {
    let [c, t, h, w] = video.dims();
    assert!(
        c == 1 || c == 3,
        "to_rgb_frames: {c} channels, expected 1 or 3"
    );
    let data: Vec<f32> = ((video.clamp(-1.0, 1.0) + 1.0) * 127.5)
        .into_data()
        .iter::<f32>()
        .collect();
    let plane = h * w;
    let frames = (0..t)
        .map(|ti| {
            let mut rgb = Vec::with_capacity(plane * 3);
            for p in 0..plane {
                for ch in 0..3 {
                    let src = if c == 1 { 0 } else { ch };
                    rgb.push(data[(src * t + ti) * plane + p].round() as u8);
                }
            }
            rgb
        })
        .collect();
    (frames, h, w)
}

/// Writes a `[C, T, H, W]` video in `[-1, 1]` as a looping animated GIF.
///
/// `delay_cs` is the delay between frames in hundredths of a second (e.g. 12 ≈ 8 fps).
///
/// # Errors
/// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if `C` is not 1 or 3, or a side exceeds 65535 pixels (the GIF
/// limit); [`ModelError::Io`] naming the path for a file that cannot be created or written.
pub fn write_gif<B: Backend>(
    video: Tensor<B, 4>,
    path: impl AsRef<Path>,
    delay_cs: u16,
) -> Result<(), ModelError> {
    let path = path.as_ref();
    let [c, _, h, w] = video.dims();
    if c != 1 && c != 3 {
        return Err(ModelError::Config(ConfigError::ShapeMismatch {
            what: "GIF channels (1 or 3)",
            expected: 3,
            got: c,
        }));
    }
    let side = |what, n: usize| {
        u16::try_from(n).map_err(|_| {
            ModelError::Config(ConfigError::ShapeMismatch {
                what,
                expected: u16::MAX as usize,
                got: n,
            })
        })
    };
    let (w16, h16) = (
        side("GIF width (at most)", w)?,
        side("GIF height (at most)", h)?,
    );
    let (frames, _, _) = to_rgb_frames(video);
    let io = |e: &dyn std::fmt::Display| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = BufWriter::new(File::create(path).map_err(|e| io(&e))?);
    let mut encoder = gif::Encoder::new(file, w16, h16, &[]).map_err(|e| io(&e))?;
    encoder
        .set_repeat(gif::Repeat::Infinite)
        .map_err(|e| io(&e))?;
    for rgb in frames {
        let mut frame = gif::Frame::from_rgb_speed(w16, h16, &rgb, 10);
        frame.delay = delay_cs;
        encoder.write_frame(&frame).map_err(|e| io(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidgen_testing::Flex;

    #[test]
    fn frames_map_range_and_layout() {
        let device = Default::default();
        // C=3, T=2, H=1, W=2: frame 0 is black/white, frame 1 mid grey.
        let v = Tensor::<Flex, 4>::from_floats(
            [
                [[[-1.0, 1.0]], [[0.0, 0.0]]],
                [[[-1.0, 1.0]], [[0.0, 0.0]]],
                [[[-1.0, 2.0]], [[0.0, 0.0]]],
            ],
            &device,
        );
        let (frames, h, w) = to_rgb_frames(v);
        assert_eq!((frames.len(), h, w), (2, 1, 2));
        assert_eq!(frames[0], vec![0, 0, 0, 255, 255, 255]);
        assert_eq!(frames[1], vec![128; 6]);
    }

    #[test]
    fn writes_a_readable_gif() {
        let device = Default::default();
        let v = Tensor::<Flex, 4>::zeros([1, 3, 8, 8], &device);
        let path = std::env::temp_dir().join(format!("vidgen-gif-{}.gif", std::process::id()));
        write_gif(v, &path, 10).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"GIF89a");
        let mut decoder = gif::DecodeOptions::new()
            .read_info(bytes.as_slice())
            .unwrap();
        let mut n = 0;
        while decoder.read_next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn errors_name_the_path_and_the_channels() {
        let device = Default::default();
        let v = Tensor::<Flex, 4>::zeros([3, 1, 2, 2], &device);
        let missing = std::env::temp_dir().join("vidgen-no-such-dir/out.gif");
        let err = write_gif(v, &missing, 10).unwrap_err();
        assert!(
            matches!(&err, ModelError::Io { path, .. } if path.contains("vidgen-no-such-dir")),
            "{err}"
        );
        let two = Tensor::<Flex, 4>::zeros([2, 1, 2, 2], &device);
        let err = write_gif(two, &missing, 10).unwrap_err();
        assert!(err.to_string().contains("GIF channels"), "{err}");
    }
}
