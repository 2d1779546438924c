//! The whole protocol under a hostile network: a node's [`Sender`] and the cloud's receiver logic
//! talk through a link that drops, duplicates, delays (so reorders) and corrupts frames in both
//! directions, while the node restarts from its persisted `acked_upto` and loses its connection at
//! random. Kafka is a `Vec`. Every run must end with Kafka holding seqs `1..=N` exactly once, in
//! order, and the node holding an empty, fully acknowledged outbox.
//!
//! Randomness is a seeded xorshift, so every failure reproduces from its seed.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::convert::Infallible;

use nimbus_core::ids::NodeId;
use nimbus_sync::frame::{Batch, EdgeEvent, FrameLimits, decode};
use nimbus_sync::identity::event_id;
use nimbus_sync::receiver::{self, Decision, ReceiverStats, UplinkError};
use nimbus_sync::sender::{Action, Effect, Outbox, Sender, SenderConfig, SenderStats};

/// xorshift64* (Vigna): tiny, seeded, good enough to drive a simulation.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Spread small seeds and avoid the all-zero state.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1_000) < per_mille
    }
}

/// How hostile the network and the node are, per mille.
#[derive(Clone, Copy)]
struct Weather {
    drop: u64,
    duplicate: u64,
    corrupt: u64,
    max_delay_ms: u64,
    restart_per_tick: u64,
    disconnect_per_tick: u64,
}

/// One direction of the network.
struct Link {
    weather: Weather,
    /// (delivery time, tiebreak, frame); delivered in time order, so random delays reorder.
    in_air: Vec<(u64, u64, Vec<u8>)>,
    counter: u64,
}

impl Link {
    fn new(weather: Weather) -> Self {
        Link { weather, in_air: Vec::new(), counter: 0 }
    }

    fn send(&mut self, now: u64, frame: Vec<u8>, rng: &mut Rng) {
        if rng.chance(self.weather.drop) {
            return;
        }
        let copies = if rng.chance(self.weather.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let mut frame = frame.clone();
            if rng.chance(self.weather.corrupt) {
                let i = rng.below(frame.len() as u64) as usize;
                frame[i] ^= 1 + rng.below(255) as u8;
            }
            let at = now + rng.below(self.weather.max_delay_ms + 1);
            self.counter += 1;
            self.in_air.push((at, self.counter, frame));
        }
    }

    fn deliver(&mut self, now: u64) -> Vec<Vec<u8>> {
        let mut due: Vec<_> = self.in_air.iter().filter(|(at, ..)| *at <= now).cloned().collect();
        self.in_air.retain(|(at, ..)| *at > now);
        due.sort();
        due.into_iter().map(|(.., frame)| frame).collect()
    }

    /// A broken connection loses some of what was in the air.
    fn lose_some(&mut self, rng: &mut Rng) {
        self.in_air.retain(|_| rng.chance(500));
    }
}

/// The node's SQLite outbox and persisted `acked_upto`, which survive restarts.
struct Disk {
    outbox: BTreeMap<u64, EdgeEvent>,
    acked_upto: u64,
}

struct DiskOutbox<'a>(&'a BTreeMap<u64, EdgeEvent>);

impl Outbox for DiskOutbox<'_> {
    type Error = Infallible;
    fn pending_from(&self, from_seq: u64, max: usize) -> Result<Vec<EdgeEvent>, Infallible> {
        Ok(self.0.range(from_seq..).take(max).map(|(_, e)| e.clone()).collect())
    }
}

/// The cloud's per-node state: the persisted high-water mark and what reached Kafka.
struct Cloud {
    node: NodeId,
    hwm: u64,
    kafka: Vec<EdgeEvent>,
    stats: ReceiverStats,
}

impl Cloud {
    /// Handles one uplink frame and returns the reply frame, if any.
    fn on_uplink(&mut self, frame: &[u8], limits: FrameLimits) -> Option<Vec<u8>> {
        let batch: Batch = match receiver::decode_uplink(frame, &self.node, limits, &mut self.stats) {
            Ok(batch) => batch,
            // Corruption: ask again right away instead of waiting for the node's timeout.
            Err(UplinkError::Frame(_)) => return Some(receiver::resend_request(self.hwm + 1)),
            Err(e) => panic!("unexpected uplink error {e}"),
        };
        let decision = receiver::classify(self.hwm, &batch);
        self.stats.record(&decision);
        match decision {
            Decision::Accept { events, upto_seq } => {
                // "Produce and wait for Kafka's confirmation", then persist hwm, then ack.
                self.kafka.extend_from_slice(events);
                self.hwm = upto_seq;
                Some(receiver::ack_after_confirm(self.hwm))
            }
            other => other.immediate_reply(),
        }
    }
}

fn event(seq: u64, rng: &mut Rng) -> EdgeEvent {
    EdgeEvent {
        seq,
        event_type: "ATTENDANCE_MARKED".into(),
        topic: "attendance.events".into(),
        priority: 0,
        payload_json: format!(r#"{{"student_id":"s-{seq}","pad":"{}"}}"#, "x".repeat(rng.below(120) as usize)),
        wall_ms: 1_700_000_000_000 + seq as i64,
        clock_synced: true,
        boot_id: "boot".into(),
    }
}

struct Outcome {
    kafka: Vec<EdgeEvent>,
    originals: Vec<EdgeEvent>,
    acked_upto: u64,
    outbox_left: usize,
    cloud: ReceiverStats,
    sender: SenderStats,
    restarts: u64,
}

/// Runs one node against the cloud until everything is acknowledged (or a generous time limit).
fn simulate(seed: u64, n: u64, weather: Weather) -> Outcome {
    let mut rng = Rng::new(seed);
    let node = NodeId::new("room-101").unwrap();
    // Small frames, so batches are cut both by count and by bytes.
    let limits = FrameLimits { max_frame_bytes: 700, max_events: 8 };
    let config = SenderConfig { limits, ..SenderConfig::default() };
    let mut disk = Disk { outbox: BTreeMap::new(), acked_upto: 0 };
    let mut sender = Sender::new(node.clone(), 0, config);
    let mut cloud = Cloud { node: node.clone(), hwm: 0, kafka: Vec::new(), stats: ReceiverStats::default() };
    let (mut up, mut down) = (Link::new(weather), Link::new(weather));
    let mut originals = Vec::new();
    let mut sender_totals = SenderStats::default();
    let mut restarts = 0;
    let mut now = 0u64;

    for _tick in 0..2_000_000u64 {
        now += 1 + rng.below(250);

        // The node records attendance.
        for _ in 0..rng.below(3) {
            let seq = originals.len() as u64 + 1;
            if seq <= n {
                let e = event(seq, &mut rng);
                disk.outbox.insert(seq, e.clone());
                originals.push(e);
            }
        }

        // The node restarts: everything in memory is gone, the disk remains.
        if rng.chance(weather.restart_per_tick) {
            add(&mut sender_totals, sender.stats());
            sender = Sender::new(node.clone(), disk.acked_upto, config);
            restarts += 1;
        }
        if rng.chance(weather.disconnect_per_tick) {
            up.lose_some(&mut rng);
            down.lose_some(&mut rng);
            sender.on_disconnect();
        }

        // The node sends.
        match sender.poll(now, &DiskOutbox(&disk.outbox)).unwrap() {
            Action::Publish(frame) => up.send(now, frame, &mut rng),
            Action::Idle => {}
            Action::Stalled(stall) => panic!("seed {seed}: sender stalled: {stall:?}"),
        }

        // The cloud receives and replies.
        for frame in up.deliver(now) {
            if let Some(reply) = cloud.on_uplink(&frame, limits) {
                down.send(now, reply, &mut rng);
            }
        }

        // The node receives acks and resend requests.
        for frame in down.deliver(now) {
            let Ok(msg) = decode(&frame, limits) else { continue };
            if let Effect::Delete { upto_seq } = sender.on_message(&msg) {
                // Safety at every step: the node never deletes what Kafka does not have.
                assert!(upto_seq <= cloud.hwm, "seed {seed}: node deletes {upto_seq} but Kafka has {}", cloud.hwm);
                disk.outbox.retain(|&seq, _| seq > upto_seq);
                disk.acked_upto = upto_seq;
            }
        }

        if originals.len() as u64 == n && disk.acked_upto == n {
            break;
        }
    }
    add(&mut sender_totals, sender.stats());
    Outcome {
        kafka: cloud.kafka,
        originals,
        acked_upto: disk.acked_upto,
        outbox_left: disk.outbox.len(),
        cloud: cloud.stats,
        sender: sender_totals,
        restarts,
    }
}

fn add(total: &mut SenderStats, s: SenderStats) {
    total.batches_sent += s.batches_sent;
    total.retransmits += s.retransmits;
    total.acks += s.acks;
    total.stale_acks += s.stale_acks;
    total.acks_beyond_sent += s.acks_beyond_sent;
    total.rewinds += s.rewinds;
    total.rejects += s.rejects;
}

fn assert_exactly_once(seed: u64, n: u64, out: &Outcome) {
    let seqs: Vec<u64> = out.kafka.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=n).collect();
    assert_eq!(seqs, expected, "seed {seed}: Kafka must hold 1..={n} once each, in order");
    assert_eq!(out.kafka, out.originals, "seed {seed}: events must arrive unaltered");
    assert_eq!(out.acked_upto, n, "seed {seed}: the node must end with everything acknowledged");
    assert_eq!(out.outbox_left, 0, "seed {seed}: the outbox must be empty");
    let node = NodeId::new("room-101").unwrap();
    let ids: HashSet<_> = out.kafka.iter().map(|e| event_id(&node, e.seq)).collect();
    assert_eq!(ids.len() as u64, n, "seed {seed}: event ids must be unique");
    // With one batch in flight, a batch never starts beyond hwm + 1.
    assert_eq!(out.cloud.gaps, 0, "seed {seed}: window of one never produces a gap");
}

const STORMY: Weather = Weather {
    drop: 200,
    duplicate: 150,
    corrupt: 50,
    max_delay_ms: 3_000,
    restart_per_tick: 3,
    disconnect_per_tick: 5,
};

#[test]
fn lossy_duplicating_reordering_link_with_restarts_stores_every_event_exactly_once_in_order() {
    let n = 600;
    let mut totals = (ReceiverStats::default(), SenderStats::default(), 0u64);
    for seed in 1..=40 {
        let out = simulate(seed, n, STORMY);
        assert_exactly_once(seed, n, &out);
        totals.0.duplicates += out.cloud.duplicates;
        totals.0.rejected.checksum += out.cloud.rejected.checksum;
        totals.0.accepted += out.cloud.accepted;
        totals.0.events_accepted += out.cloud.events_accepted;
        add(&mut totals.1, out.sender);
        totals.2 += out.restarts;
    }
    let (cloud, sender, restarts) = totals;
    println!("cloud: {cloud:?}\nsender: {sender:?}\nrestarts: {restarts}");
    // The storm really happened: every recovery path was taken.
    assert!(cloud.duplicates > 0 && cloud.rejected.checksum > 0, "{cloud:?}");
    assert!(cloud.events_accepted == 40 * n, "{cloud:?}");
    assert!(sender.retransmits > 0 && sender.stale_acks > 0 && sender.rewinds > 0, "{sender:?}");
    assert!(restarts > 0);
}

#[test]
fn a_perfect_link_needs_no_retransmission() {
    let calm =
        Weather { drop: 0, duplicate: 0, corrupt: 0, max_delay_ms: 100, restart_per_tick: 0, disconnect_per_tick: 0 };
    let out = simulate(7, 500, calm);
    assert_exactly_once(7, 500, &out);
    assert_eq!(out.sender.retransmits, 0);
    assert_eq!(out.cloud.duplicates, 0);
}

#[test]
fn a_link_that_mostly_drops_still_delivers_everything() {
    let awful = Weather { drop: 700, duplicate: 300, corrupt: 100, max_delay_ms: 8_000, ..STORMY };
    for seed in 100..105 {
        let out = simulate(seed, 150, awful);
        assert_exactly_once(seed, 150, &out);
    }
}

#[test]
fn unacknowledged_batch_is_resent_with_doubling_backoff_capped_at_a_minute() {
    let rows: BTreeMap<u64, EdgeEvent> = (1..=3).map(|s| (s, event(s, &mut Rng::new(s)))).collect();
    let mut sender = Sender::new(NodeId::new("room-101").unwrap(), 0, SenderConfig::default());
    let mut sent_at = Vec::new();
    let mut frames = HashSet::new();
    // A silent cloud; the node polls every 100 ms for ten minutes.
    for now in (0..600_000).step_by(100) {
        if let Action::Publish(frame) = sender.poll(now, &DiskOutbox(&rows)).unwrap() {
            sent_at.push(now);
            frames.insert(frame);
        }
    }
    let waits: Vec<u64> = sent_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(waits[..8], [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    assert!(waits[5..].iter().all(|&w| w == 60_000));
    assert_eq!(frames.len(), 1, "a retransmission is the identical frame");
    // An ack ends the retransmissions.
    assert_eq!(sender.on_ack(3), Effect::Delete { upto_seq: 3 });
    assert_eq!(sender.poll(10_000_000, &DiskOutbox(&rows)).unwrap(), Action::Idle);
}

#[test]
fn restart_with_smaller_batches_makes_progress_on_acks_beyond_what_it_resent() {
    let node = NodeId::new("room-101").unwrap();
    let limits = FrameLimits::default();
    let rows: BTreeMap<u64, EdgeEvent> = (1..=12).map(|s| (s, event(s, &mut Rng::new(s)))).collect();
    let mut cloud = Cloud { node: node.clone(), hwm: 0, kafka: Vec::new(), stats: ReceiverStats::default() };

    // Before the restart: 1..=10 reach Kafka, but the ack is lost.
    let big = SenderConfig { limits: FrameLimits { max_events: 10, ..limits }, ..SenderConfig::default() };
    let Action::Publish(frame) = Sender::new(node.clone(), 0, big).poll(0, &DiskOutbox(&rows)).unwrap() else {
        panic!("expected a batch")
    };
    let _lost_ack = cloud.on_uplink(&frame, limits);
    assert_eq!(cloud.hwm, 10);

    // After the restart the node sends smaller batches; each re-ack of 10 is beyond what it resent.
    let small = SenderConfig { limits: FrameLimits { max_events: 4, ..limits }, ..SenderConfig::default() };
    let mut sender = Sender::new(node, 0, small);
    let mut rows = rows;
    for now in 0..10 {
        let Action::Publish(frame) = sender.poll(now, &DiskOutbox(&rows)).unwrap() else { break };
        let reply = cloud.on_uplink(&frame, limits).expect("a reply to every batch");
        if let Effect::Delete { upto_seq } = sender.on_message(&decode(&reply, limits).unwrap()) {
            rows.retain(|&s, _| s > upto_seq);
        }
    }
    assert_eq!(sender.acked_upto(), 12);
    assert!(rows.is_empty());
    assert_eq!(cloud.kafka.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    assert_eq!(sender.stats().acks_beyond_sent, 2, "1..=4 and 5..=8 were answered with 10");
}
