//! The kernel delta source: flips the flow-map generation, then empties the
//! generation the datapath no longer writes, and reads the fallback ring.
//!
//! Why this cannot lose or double-count an increment: the flip is a
//! map-in-map update, which the kernel completes only after an RCU grace
//! period (`maybe_wait_bpf_programs` in kernel/bpf/syscall.c). TC programs
//! run inside RCU read sections, so when the update returns, every program
//! that could have looked up the old generation has finished. Reading and
//! deleting its entries then races with nothing.

use std::os::fd::AsFd as _;

use aya::{
    Ebpf,
    maps::{Array, ArrayOfMaps, HashMap, Map, MapData, PerCpuArray, RingBuf},
};
use vxflow_common::{
    Counter, Counters, DatapathStats, FallbackRecord, FlowKey, MAP_COUNTERS, MAP_FALLBACK, MAP_FLOW_GEN, MAP_FLOWS,
    MAP_NON_IP, NonIpSlots,
};

use super::{LoadError, ticks::TickClock};
use crate::drain::{CounterSnapshot, DeltaSource, FlowDelta};

/// One generation of the kernel flow map (a `FlowKey` to `DatapathStats` hash),
/// kept as raw map data: it is drained with batch syscalls aya does not wrap.
type FlowMap = MapData;
/// The one-slot array of maps that selects the generation being written.
type GenMap = ArrayOfMaps<MapData, FlowMap>;

/// Why reading the kernel's maps failed.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("flipping the flow-map generation")]
    Flip(#[source] aya::maps::MapError),
    #[error("draining a flow-map generation (BPF_MAP_LOOKUP_AND_DELETE_BATCH, Linux 5.6+)")]
    Batch(#[source] std::io::Error),
    #[error("reading the datapath counters")]
    Counters(#[source] aya::maps::MapError),
}

/// The maps userspace reads, taken out of the loaded object.
pub struct KernelMaps {
    gen_map: GenMap,
    flows: [FlowMap; 2],
    /// Index into `flows` of the generation the datapath writes now.
    active: usize,
    fallback: RingBuf<MapData>,
    counters: PerCpuArray<MapData, Counters>,
    /// The `.bss` section: non-IP frames of the CPUs below `NON_IP_CPUS`.
    non_ip: Array<MapData, NonIpSlots>,
    generation_memory: Option<GenerationMemory>,
    /// Entries the last drained generation held.
    last_map_entries: usize,
    last_timing: DrainTiming,
    /// Maps the datapath's jiffies to monotonic time.
    ticks: TickClock,
    /// Buckets of a flow-map generation: its entries rounded up to a power
    /// of two, as the kernel sizes a hash map.
    buckets: u32,
    /// Threads a large drain uses (see `batch::take_all`).
    drain_threads: usize,
}

/// A generation of at least this many buckets is drained by several
/// threads; a smaller one is drained in less time than a thread takes to
/// start.
const PARALLEL_DRAIN_BUCKETS: u32 = 8192;
/// At most this many drain threads, however many CPUs the node has.
const MAX_DRAIN_THREADS: usize = 4;

/// Where the last drain's time went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainTiming {
    /// The flip: the map-in-map update and its RCU grace period, a fixed
    /// cost per drain whatever the flow count, and mostly waiting.
    pub flip: std::time::Duration,
    /// Reading and deleting the old generation's entries, and the ring.
    pub read: std::time::Duration,
}

/// What one flow-map generation costs in kernel memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationMemory {
    /// Bytes charged for the map (`memlock` in its fdinfo).
    pub bytes: u64,
    pub max_entries: u32,
}

impl GenerationMemory {
    /// Kernel bytes per flow slot, for both generations together.
    #[must_use]
    pub fn bytes_per_flow(&self) -> u64 {
        2 * self.bytes / u64::from(self.max_entries.max(1))
    }
}

/// Reads the kernel's own accounting of generation A's memory.
fn measure_generation(ebpf: &Ebpf) -> Option<GenerationMemory> {
    let Some(aya::maps::Map::HashMap(data)) = ebpf.map(vxflow_common::MAP_FLOWS[0]) else {
        return None;
    };
    memory_of(data.fd().as_fd())
}

/// The kernel's accounting of a map's memory now (`memlock` in its fdinfo:
/// for a map allocated as it fills, the bucket array and the entries held).
fn memory_of(fd: std::os::fd::BorrowedFd<'_>) -> Option<GenerationMemory> {
    use std::os::fd::AsRawFd as _;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    let field = |name: &str| -> Option<u64> {
        info.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok())
    };
    Some(GenerationMemory { bytes: field("memlock:")?, max_entries: u32::try_from(field("max_entries:")?).ok()? })
}

impl KernelMaps {
    pub(crate) fn take(ebpf: &mut Ebpf, ticks: TickClock) -> Result<Self, LoadError> {
        let generation_memory = measure_generation(ebpf);
        let (gen_map, flows) = take_flow_maps(ebpf)?;
        let buckets =
            generation_memory.map_or(u32::MAX, |m| m.max_entries).checked_next_power_of_two().unwrap_or(u32::MAX);
        let fallback = ebpf
            .take_map(MAP_FALLBACK)
            .ok_or(LoadError::MissingMap(MAP_FALLBACK))
            .and_then(|m| RingBuf::try_from(m).map_err(|source| LoadError::Map { name: MAP_FALLBACK, source }))?;
        let counters = ebpf
            .take_map(MAP_COUNTERS)
            .ok_or(LoadError::MissingMap(MAP_COUNTERS))
            .and_then(|m| PerCpuArray::try_from(m).map_err(|source| LoadError::Map { name: MAP_COUNTERS, source }))?;
        let non_ip = ebpf
            .take_map(MAP_NON_IP)
            .ok_or(LoadError::MissingMap(MAP_NON_IP))
            .and_then(|m| Array::try_from(m).map_err(|source| LoadError::Map { name: MAP_NON_IP, source }))?;
        Ok(Self {
            gen_map,
            flows,
            active: 0,
            fallback,
            counters,
            non_ip,
            generation_memory,
            last_map_entries: 0,
            last_timing: DrainTiming::default(),
            ticks,
            buckets,
            drain_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_DRAIN_THREADS)),
        })
    }

    /// Kernel memory of one flow-map generation and its entries, measured
    /// when the maps were loaded.
    #[must_use]
    pub fn generation_memory(&self) -> Option<GenerationMemory> {
        self.generation_memory
    }

    /// Entries the last drained generation held: the distinct flows of one
    /// poll interval, against the map's capacity.
    #[must_use]
    pub fn last_map_entries(&self) -> usize {
        self.last_map_entries
    }

    /// The fallback ring, readable when the datapath found the flow map full.
    #[must_use]
    pub fn fallback_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fallback.as_fd()
    }

    /// Kernel memory of the generation the datapath writes now.
    #[must_use]
    pub fn active_generation_memory(&self) -> Option<GenerationMemory> {
        memory_of(self.flows[self.active].fd().as_fd())
    }

    /// Threads that drain a large generation.
    #[must_use]
    pub fn drain_threads(&self) -> usize {
        if self.buckets >= PARALLEL_DRAIN_BUCKETS { self.drain_threads } else { 1 }
    }

    /// How the datapath's jiffies map to monotonic time.
    #[must_use]
    pub fn ticks(&self) -> TickClock {
        self.ticks
    }

    /// How long the last drain's flip and read took.
    #[must_use]
    pub fn last_timing(&self) -> DrainTiming {
        self.last_timing
    }

    /// Empties a quiescent generation into `out`, in batches.
    fn drain_generation(&mut self, index: usize, out: &mut Vec<FlowDelta>) -> Result<(), DrainError> {
        super::batch::take_all(self.flows[index].fd().as_fd(), self.buckets, self.drain_threads(), &self.ticks, out)
            .map_err(DrainError::Batch)
    }

    fn drain_fallback(&mut self, out: &mut Vec<FlowDelta>) {
        while let Some(item) = self.fallback.next() {
            if item.len() < size_of::<FallbackRecord>() {
                tracing::error!(len = item.len(), "short fallback record ignored (build mismatch)");
                continue;
            }
            // SAFETY: the datapath writes whole FallbackRecords; read_unaligned
            // because the ring gives no alignment promise for the Rust type.
            let rec: FallbackRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            out.push(FlowDelta { key: rec.key, stats: self.ticks.stats(&rec.stats) });
        }
    }
}

impl DeltaSource for KernelMaps {
    type Error = DrainError;

    fn drain(&mut self, out: &mut Vec<FlowDelta>) -> Result<(), Self::Error> {
        let old = self.active;
        let next = 1 - old;
        // The old generation was emptied by the previous drain, so the
        // datapath starts the new period on an empty map.
        let started = std::time::Instant::now();
        self.gen_map.set(0, &self.flows[next], 0).map_err(DrainError::Flip)?;
        self.active = next;
        let flipped = std::time::Instant::now();
        let before = out.len();
        let drained = self.drain_generation(old, out);
        self.last_map_entries = out.len() - before;
        // Ring records are whole packets; reading them in any drain is exact.
        self.drain_fallback(out);
        self.last_timing = DrainTiming { flip: flipped - started, read: flipped.elapsed() };
        drained
    }

    fn counters(&self) -> Result<CounterSnapshot, Self::Error> {
        let per_cpu = self.counters.get(&0, 0).map_err(DrainError::Counters)?;
        let mut snap = CounterSnapshot::default();
        for counter in Counter::ALL {
            snap.set(counter, per_cpu.iter().map(|cpu| cpu[counter as usize]).sum());
        }
        // The whole section, 64 KiB, in one read.
        let slots = self.non_ip.get(&0, 0).map_err(DrainError::Counters)?;
        let non_ip: u64 = slots.iter().map(|s| s.frames).sum();
        for counter in [Counter::NonIp, Counter::Seen] {
            snap.set(counter, snap.get(counter) + non_ip);
        }
        Ok(snap)
    }
}

/// Takes the flow-generation maps out of `ebpf` and points the datapath at
/// generation A.
fn take_flow_maps(ebpf: &mut Ebpf) -> Result<(GenMap, [FlowMap; 2]), LoadError> {
    let take = |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(LoadError::MissingMap(name));
    let mut gen_map: GenMap = ArrayOfMaps::try_from(take(ebpf, MAP_FLOW_GEN)?)
        .map_err(|source| LoadError::Map { name: MAP_FLOW_GEN, source })?;
    let mut flows = Vec::with_capacity(2);
    for name in MAP_FLOWS {
        let map = take(ebpf, name)?;
        // Checks the map is a FlowKey -> DatapathStats hash; kept as its data.
        HashMap::<&MapData, FlowKey, DatapathStats>::try_from(&map)
            .map_err(|source| LoadError::Map { name, source })?;
        let Map::HashMap(data) = map else {
            return Err(LoadError::MissingMap(name));
        };
        flows.push(data);
    }
    let [a, b]: [FlowMap; 2] = flows.try_into().unwrap_or_else(|_| unreachable!("two flow maps were pushed"));
    gen_map.set(0, &a, 0).map_err(|source| LoadError::Map { name: MAP_FLOW_GEN, source })?;
    Ok((gen_map, [a, b]))
}
