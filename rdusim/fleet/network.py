"""The KV cache moved from a prefill replica to a decode replica over the inter-node
network of the cluster files (clusters/*.yaml: per socket/GPU NIC bandwidth, latency,
efficiency, topology).

A request's KV cache is its prompt's, by the one KV formula (``ModelConfig.kv_cache_bytes``,
every layer's K and V of every prompt token). Each TP rank holds its share and sends it over
its own NIC at once where the fabric is rail-optimised on both sides (min(tp_prefill,
tp_decode) streams; the ranks of the wider side pair up); through a shared uplink it is one
stream. A stream runs at the slower end's effective bandwidth (bandwidth x efficiency) after
the larger of the two latencies (one hop between the pools: an assumption). The transfer
starts at the first token and overlaps nothing else on either server (the prefill replica's
blocks are freed at once: the KV is assumed staged for sending).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.config.arch_common import NetworkTopology
from rdusim.config.cluster import ClusterSpec


@dataclass(frozen=True)
class KvLink:
    stream_bytes_per_s: float
    latency_s: float
    streams: int

    def time_s(self, nbytes: float) -> float:
        return self.latency_s + nbytes / (self.stream_bytes_per_s * self.streams) if nbytes > 0 else 0.0


def kv_link(src: ClusterSpec, dst: ClusterSpec, tp_src: int, tp_dst: int) -> KvLink:
    rail = src.topology == NetworkTopology.RAIL_OPTIMIZED and dst.topology == NetworkTopology.RAIL_OPTIMIZED
    return KvLink(min(src.network.effective_bandwidth_bytes_per_s, dst.network.effective_bandwidth_bytes_per_s),
                  max(src.network.latency_s, dst.network.latency_s), min(tp_src, tp_dst) if rail else 1)
