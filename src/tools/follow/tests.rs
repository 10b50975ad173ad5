//! Rounds of a follower driven by hand, with a clock the test sets: what a
//! bad checksum or header in the active segment becomes, depending on
//! whether its bytes stay bad.

use super::follower::{Follower, Round};
use super::suspect::CONFIRM_AFTER;
use crate::frame::encode;
use crate::tools::inspect::{Args, Rows};
use clap::Parser;
use serde_json::Value;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn args(path: &Path) -> Args {
    let mut cli = Cli::try_parse_from(["inspect", "--json", "--follow", path.to_str().unwrap()])
        .expect("arguments");
    cli.args.log.resolve(true).unwrap();
    cli.args
}

/// Frame A0 whole, frame A1 with only the first half of its payload (the
/// rest still zeros, as a write in progress leaves it), frame A2 whole.
/// Returns the file and where A1's missing half goes.
fn half_written(dir: &Path) -> (std::path::PathBuf, u64, Vec<u8>) {
    let a0 = encode(b"entry zero");
    let a1 = encode(b"entry one, written in two steps");
    let a2 = encode(b"entry two");
    let half = 8 + (a1.len() - 8) / 2;
    let mut bytes = a0.clone();
    bytes.extend_from_slice(&a1[..half]);
    bytes.resize(a0.len() + a1.len(), 0);
    bytes.extend_from_slice(&a2);
    let path = dir.join("n1.wal");
    std::fs::write(&path, &bytes).unwrap();
    (path, (a0.len() + half) as u64, a1[half..].to_vec())
}

/// Runs one round at `now` and returns the (index, status) of the frames
/// it showed, and how many damage lines.
fn round(f: &mut Follower, args: &Args, now: Instant) -> (Vec<(u64, String)>, usize) {
    let mut out = Vec::new();
    let mut rows = Rows::new(args, &mut out);
    assert_ne!(f.round(&mut rows, now).unwrap(), Round::Finished);
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let frames = lines
        .iter()
        .filter(|l| l["type"] == "frame")
        .map(|l| {
            (
                l["index"].as_u64().unwrap(),
                l["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        frames,
        lines.iter().filter(|l| l["type"] == "damage").count(),
    )
}

fn follower(path: &Path) -> (Follower, Args) {
    let args = args(path);
    let f = Follower::start(&args, Duration::from_millis(1))
        .unwrap()
        .expect("the file exists");
    (f, args)
}

fn ok(indexes: &[u64]) -> Vec<(u64, String)> {
    indexes.iter().map(|&i| (i, "ok".to_owned())).collect()
}

#[test]
fn a_frame_still_being_written_is_never_shown_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (path, rest_at, rest) = half_written(dir.path());
    let (mut f, args) = follower(&path);
    let t0 = Instant::now();
    assert_eq!(round(&mut f, &args, t0), (ok(&[0]), 0));
    assert_eq!(round(&mut f, &args, t0 + CONFIRM_AFTER / 2), (ok(&[]), 0));
    // The write finishes: the frame is whole, and shown as it is.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&rest, rest_at).unwrap();
    assert_eq!(
        round(&mut f, &args, t0 + CONFIRM_AFTER * 2),
        (ok(&[1, 2]), 0)
    );
}

#[test]
fn bytes_that_stay_bad_are_shown_as_corrupt_once_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = half_written(dir.path());
    let (mut f, args) = follower(&path);
    let t0 = Instant::now();
    assert_eq!(round(&mut f, &args, t0), (ok(&[0]), 0));
    assert_eq!(round(&mut f, &args, t0 + CONFIRM_AFTER / 2), (ok(&[]), 0));
    let (frames, damage) = round(&mut f, &args, t0 + CONFIRM_AFTER);
    assert_eq!(frames, [(1, "corrupt".to_owned()), (2, "ok".to_owned())]);
    assert_eq!(damage, 0);
}

#[test]
fn a_bad_header_is_shown_as_damage_once_confirmed_then_the_frames_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = encode(b"entry zero");
    // A length word of 0 with a checksum word: no frame, but not free space.
    bytes.extend_from_slice(&[0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    bytes.extend_from_slice(&encode(b"entry after the damage"));
    let path = dir.path().join("n1.wal");
    std::fs::write(&path, &bytes).unwrap();
    let (mut f, args) = follower(&path);
    let t0 = Instant::now();
    assert_eq!(round(&mut f, &args, t0), (ok(&[0]), 0));
    assert_eq!(round(&mut f, &args, t0 + CONFIRM_AFTER / 2), (ok(&[]), 0));
    assert_eq!(round(&mut f, &args, t0 + CONFIRM_AFTER), (ok(&[]), 1));
    assert_eq!(round(&mut f, &args, t0 + CONFIRM_AFTER), (ok(&[1]), 0));
}

#[test]
fn a_second_bad_frame_waits_for_its_own_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    // A0 whole, A1 rotted for good, A2 whole, then a half-written A3 whose
    // next frame A4 landed first.
    let mut a1 = encode(b"entry one");
    *a1.last_mut().unwrap() ^= 1;
    let a3 = encode(b"entry three, written in two steps");
    let half = 8 + (a3.len() - 8) / 2;
    let mut bytes = encode(b"entry zero");
    bytes.extend(&a1);
    bytes.extend(encode(b"entry two"));
    let rest_at = (bytes.len() + half) as u64;
    bytes.extend_from_slice(&a3[..half]);
    bytes.resize(bytes.len() + a3.len() - half, 0);
    bytes.extend(encode(b"entry four"));
    let path = dir.path().join("n1.wal");
    std::fs::write(&path, &bytes).unwrap();
    let (mut f, args) = follower(&path);
    let t0 = Instant::now();
    assert_eq!(round(&mut f, &args, t0), (ok(&[0]), 0));
    // A1 has stayed bad long enough; A3 is seen bad for the first time.
    let (frames, _) = round(&mut f, &args, t0 + CONFIRM_AFTER);
    assert_eq!(frames, [(1, "corrupt".to_owned()), (2, "ok".to_owned())]);
    assert_eq!(
        round(&mut f, &args, t0 + CONFIRM_AFTER * 3 / 2),
        (ok(&[]), 0)
    );
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&a3[half..], rest_at).unwrap();
    assert_eq!(
        round(&mut f, &args, t0 + CONFIRM_AFTER * 3),
        (ok(&[3, 4]), 0)
    );
}
