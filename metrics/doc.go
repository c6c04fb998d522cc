// Package metrics exports a Vaultaire node's Prometheus metrics from its own
// registry (never the global one), served by Handler at /_vault/metrics.
// Handler itself does not authenticate: the S3 server in front of it does
// (s3.Config.MetricsToken, a bearer token, or root's signature), because
// the series name tenants.
//
// Request series are pushed: Metrics implements s3.Observer and counts every
// RequestEvent on the request's goroutine without blocking. Everything else
// is pulled: each optional provider function in Config is called when
// Prometheus scrapes, and a nil provider leaves its series out.
//
// Cardinality is bounded. No label carries a bucket or a key; operation
// values come from a fixed list (anything else is "Unknown"); status_class
// is one of "2xx", "3xx", "4xx", "5xx"; tenant is "" for unauthenticated
// requests and at most Config.MaxTenants distinct names, after which further
// tenants share tenant="_other" (a name no real tenant can have). Drive,
// node, Raft state and gossip state values are bounded by the cluster.
//
// Series, all prefixed vaultaire_:
//
// From ObserveRequest:
//
//	s3_requests_total{operation,status_class,tenant}   counter
//	s3_request_duration_seconds{operation}             histogram, 1 ms .. 60 s
//	s3_received_bytes_total{tenant}                    counter, request bodies
//	s3_sent_bytes_total{tenant}                        counter, response bodies
//	s3_rate_limited_total{tenant}                      counter, 503 SlowDown answers
//	s3_quota_refused_total{tenant}                     counter, 403 QuotaExceeded answers
//
// From Config.Engine (engine.Stats):
//
//	erasure_encode_seconds_total     counter, time streaming bodies through the encoder
//	erasure_encodes_total            counter, bodies encoded (puts and parts)
//	erasure_decode_seconds_total     counter, time decoding reads
//	erasure_decodes_total            counter, ranges decoded
//	degraded_reads_total             counter, reads that needed parity or met a bad shard
//	repairs_total                    counter, artifacts healed
//	repaired_shards_total            counter, shards rewritten by healing
//	heal_queue                       gauge, artifacts waiting to be healed
//	heal_failures_total              counter, heal attempts that failed (the artifact stays queued, retried with backoff)
//	heal_queue_dropped_total         counter, artifacts not queued because the heal queue was full
//	tier_moved_total                 counter, artifacts the tier storage policy moved to remote drives
//	tier_moved_bytes_total           counter, their bytes before erasure coding
//	relayout_moved_total             counter, artifact versions moved into their container's new layout after a storage policy change (to or from hybrid)
//	relayout_moved_bytes_total       counter, their bytes before erasure coding
//
// From Config.Drives (DriveSample):
//
//	drive_info{drive,node,class}     gauge, always 1 (joins a drive to its class)
//	drive_online{drive,node}         gauge, 1 online, 0 offline
//	drive_used_bytes{drive,node}     gauge
//	drive_free_bytes{drive,node}     gauge
//	drive_total_bytes{drive,node}    gauge
//
// From Config.Raft (RaftSample):
//
//	raft_state{state}                gauge, 1 for the current state of leader, follower, candidate, shutdown; 0 for the others
//	raft_term                        gauge
//	raft_commit_index                gauge
//	raft_applied_index               gauge
//	raft_last_contact_seconds        gauge, since the leader was last heard from (0 on the leader)
//	raft_voters                      gauge
//	raft_nonvoters                   gauge
//
// From Config.Members (gossip state → count):
//
//	gossip_members{state}            gauge
//
// From Config.Map (MapSample, cluster mode):
//
//	map_epoch                        gauge, epoch of the current cluster map
//	fence_refused_writes_total       counter, writes refused as planned under a stale map epoch
//	drain_drives                     gauge, drives being drained
//	drain_pgs_left                   gauge, PG slots of kept maps still on draining drives (0: done)
//	drain_bytes_left                 gauge, bytes the draining drives still hold
//	drain_bytes_per_second           gauge, rate the bytes left fell at lately; -1 unknown
//	drain_eta_seconds                gauge, time left at that rate; -1 unknown, 0 done
//
// From Config.Conns (s3.ConnStats, the S3 listeners' connection caps):
//
//	connections_open                 gauge, client connections open
//	connections_refused_total{cap}   counter, connections refused over the per_ip cap (429 SlowDown) or the total cap (503)
//	connections_refused_unanswered_total  counter, refused connections closed without an answer (too many refusals answered at once)
//
// From Config.Scrub (engine.ScrubStatus), for this node's own drives:
//
//	scrub_bytes_total{drive}         counter, shard bytes verified
//	scrub_shards_total{drive}        counter, shards verified
//	scrub_corrupt_total{drive}       counter, shards found corrupt or missing
//	scrub_repaired_total{drive}      counter, of those, rebuilt at once (the rest wait in the heal queue)
//	scrub_passes_total{drive}        counter, full passes completed
//	scrub_pass_progress{drive}       gauge, 0 to 1, of the pass in progress
//
// From Config.Remotes (RemoteSample), for this node's remote drives (what a
// provider bills: every HTTP attempt, retries included):
//
//	remote_requests_total{drive,method}  counter, method PUT, POST, GET, LIST, HEAD or DELETE
//	remote_sent_bytes_total{drive}       counter, request body bytes
//	remote_received_bytes_total{drive}   counter, response body bytes
//	remote_retries_total{drive}          counter, attempts after the first of a call
//	remote_failures_total{drive}         counter, calls given up after their retries
//	remote_breaker_opens_total{drive}    counter, times the circuit breaker opened
//	remote_losses_total{drive}           counter, times format.json was gone and the index reloaded
//	remote_lost_objects_total{drive}     counter, objects found gone while format.json was kept
//	remote_online{drive}                 gauge, 1 when the backend is usable
//	remote_encrypted{drive}              gauge, 1 when what it stores at the provider is encrypted
//
// From Config.Usage (TenantUsage):
//
//	tenant_stored_bytes{tenant}      gauge
//	tenant_artifacts{tenant}         gauge
//
// The registry also holds the standard go_* and process_* series of the
// Go and process collectors.
//
// A node wires it like this:
//
//	m := metrics.New(metrics.Config{Engine: eng.Stats, Raft: raftSample})
//	s3cfg.Observer = m
//	s3cfg.Metrics = m.Handler()
//
// Of this module, metrics imports only s3 (the request events it counts
// and the route table's operation names) and engine (its Stats); it is
// fed through interfaces and functions, never reaches into the cluster,
// and nothing but cmd/vaultd imports it.
package metrics
