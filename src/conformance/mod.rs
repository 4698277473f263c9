//! The backend-generic conformance suite.
//!
//! Every case is written against the abstract traits only ([`PersistenceFactory`],
//! [`Bundle`] and the store traits) and takes a [`Backend`] that says how to build a factory
//! and its configurations. [`conformance_suite!`](crate::conformance_suite) expands into one
//! `#[tokio::test]` per case, so a backend runs the whole suite with one line:
//!
//! ```ignore
//! mod my_backend_conformance {
//!     at_persistence_secondary_server::conformance_suite!(my_crate::MyBackend::default());
//! }
//! ```
//!
//! Differences between backends are explicit [`Capabilities`]; a case whose capability is
//! absent asserts the documented "absent" behaviour instead of being skipped.

use crate::model::{Clock, ManualClock, Timestamp};
use crate::store::{Bundle, PersistenceConfig, PersistenceFactory};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod cases;

/// What a backend can do beyond the common contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `snapshot()` gives real isolation (`supports_snapshots() == true`).
    pub snapshots: bool,
    /// `query_by_path` is implemented (`supports_path_queries() == true`).
    pub path_queries: bool,
}

/// How the suite builds factories and configurations for one backend.
pub trait Backend: Send + Sync {
    /// A short name, e.g. `sled`.
    fn name(&self) -> &'static str;
    /// A new, empty factory.
    fn new_factory(&self) -> Arc<dyn PersistenceFactory>;
    /// A server configuration (every store on) rooted at `root`, using `clock`.
    fn server_config(&self, root: &Path, clock: Arc<dyn Clock>) -> Box<dyn PersistenceConfig>;
    /// A client configuration (keystore only, commit-log-free) rooted at `root`.
    fn client_config(&self, root: &Path, clock: Arc<dyn Clock>) -> Box<dyn PersistenceConfig>;
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;
}

/// 2024-01-01T00:00:00.000Z, where every case's clock starts.
pub const T0: Timestamp = Timestamp::from_millis(1_704_067_200_000);

/// One case's world: a temporary directory, a factory and a manual clock.
pub struct Ctx<'b> {
    /// The backend under test.
    pub backend: &'b dyn Backend,
    /// The temporary directory every store of this case lives under.
    pub root: tempfile::TempDir,
    /// The factory.
    pub factory: Arc<dyn PersistenceFactory>,
    /// The clock every store uses; starts at [`T0`].
    pub clock: Arc<ManualClock>,
}

impl<'b> Ctx<'b> {
    /// A fresh world for `backend`.
    pub fn new(backend: &'b dyn Backend) -> Self {
        Ctx {
            backend,
            root: tempfile::tempdir().expect("a temporary directory"),
            factory: backend.new_factory(),
            clock: Arc::new(ManualClock::new(T0)),
        }
    }

    /// The directory for `at_sign`'s stores.
    pub fn dir(&self, at_sign: &str) -> PathBuf {
        self.root.path().join(at_sign.trim_start_matches('@'))
    }

    /// The server configuration for `at_sign`.
    pub fn server_config(&self, at_sign: &str) -> Box<dyn PersistenceConfig> {
        self.backend
            .server_config(&self.dir(at_sign), self.clock.clone())
    }

    /// The client configuration for `at_sign`.
    pub fn client_config(&self, at_sign: &str) -> Box<dyn PersistenceConfig> {
        self.backend
            .client_config(&self.dir(at_sign), self.clock.clone())
    }

    /// Initializes `at_sign` with the server configuration.
    pub async fn server(&self, at_sign: &str) -> Arc<Bundle> {
        let cfg = self.server_config(at_sign);
        self.factory
            .initialize(at_sign, cfg.as_ref())
            .await
            .expect("initialize a server bundle")
    }

    /// Initializes `at_sign` with the client configuration.
    pub async fn client(&self, at_sign: &str) -> Arc<Bundle> {
        let cfg = self.client_config(at_sign);
        self.factory
            .initialize(at_sign, cfg.as_ref())
            .await
            .expect("initialize a client bundle")
    }

    /// Closes the factory and initializes `at_sign` again with the server configuration
    /// (a restart).
    pub async fn restart(&self, at_sign: &str) -> Arc<Bundle> {
        self.factory.close().await;
        self.server(at_sign).await
    }
}

/// Expands into one `#[tokio::test]` per conformance case for the backend `$backend`
/// (an expression of a type implementing [`Backend`]). Test names are the case names, so
/// instantiating the suite inside a module named after the backend lets `cargo test
/// <backend>::` select it.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr) => {
        $crate::__conformance_tests!($backend;
            // keystore (BEHAVIOR 3, API-5.0 2-3)
            commit_ids_start_at_zero_and_never_go_back,
            worked_scenario_of_behavior_3_8,
            get_of_an_absent_key_is_key_not_found_and_get_meta_is_none,
            put_creates_then_updates_with_versions_and_commit_ops,
            create_overwrites_an_existing_key_and_resets_version,
            create_commits_update_all_only_when_metadata_fields_are_set,
            put_meta_keeps_the_value_and_commits_update_meta,
            put_meta_of_an_absent_key_creates_a_record_without_data,
            put_all_writes_value_and_metadata_and_commits_update_all,
            skip_commit_writes_return_minus_one_and_purge_the_entry,
            skip_commit_purge_never_lowers_the_mark_across_a_restart,
            elided_keys_return_minus_one_and_consume_no_commit_id,
            reserved_keys_without_an_at_sign_are_valid_and_committed,
            remove_of_an_absent_key_commits_a_delete_and_emits_removed,
            commit_op_time_is_deleted_at_or_asserted_updated_at_else_now,
            invalid_keys_are_rejected_on_every_write_path_and_write_nothing,
            over_long_keys_are_rejected_on_every_write_path_and_write_nothing,
            key_length_is_measured_on_the_utf7_form,
            reads_and_writes_fold_keys_to_the_canonical_form,
            get_keys_hides_expired_keys_at_the_boundary_while_reads_ignore_time,
            get_keys_hides_unborn_keys_until_available_at,
            get_keys_regex_is_an_unanchored_search_and_a_bad_regex_is_invalid_regex,
            delete_expired_keys_commits_nothing_purges_entries_and_emits_removed,
            expiry_tracking_follows_updates_put_meta_and_remove,
            next_expires_at_and_peek_expired_follow_the_expiry_index,
            get_many_returns_present_keys_by_canonical_key,
            remove_many_counts_removed_keys_and_commits_deletes_or_purges,
            exists_agrees_with_get_and_get_keys,
            changes_report_put_create_and_remove,
            changes_report_put_all_and_put_meta,
            changes_remove_many_emits_one_removed_per_removed_key,
            changes_subscribers_are_independent_and_late_ones_miss_earlier_events,
            remove_hooks_run_around_each_remove_with_the_canonical_key,
            failing_remove_hooks_abort_before_and_report_after_the_remove,
            remove_hooks_run_for_each_expiry_sweep_removal,
            remove_hooks_run_per_present_key_in_remove_many,
            concurrent_creates_get_distinct_dense_ids,
            compact_yields_nothing_under_one_entry_per_key,
            commit_log_free_writes_return_none_and_skip_commit_minus_one,
            commit_log_free_store_emits_the_same_events_and_expires_keys,
            asserted_created_and_updated_at_are_stored_and_win_over_the_stored_record,
            asserted_expires_at_wins_over_ttl_and_derive_ttl_derives_it,
            asserted_expires_at_without_ttl_still_expires,
            asserted_available_at_is_stored_and_governs_visibility,
            // commit log (BEHAVIOR 4, API-5.0 4)
            commit_log_skip_rule_returns_minus_one_and_consumes_no_id,
            commit_log_keeps_one_entry_per_at_key,
            commit_op_time_defaults_to_now_and_keeps_a_given_one,
            iterate_yields_ascending_ids_from_an_inclusive_start_and_filters,
            iterate_rev_yields_descending_ids_from_an_inclusive_start,
            replay_stores_the_entry_verbatim_raises_the_mark_and_fires_no_events,
            replay_is_idempotent_on_id_at_key_and_op,
            replay_of_a_different_entry_under_a_stored_id_is_a_conflict,
            replay_without_a_commit_id_is_invalid_argument,
            replay_upserts_by_at_key_keeping_one_entry_per_key,
            replayed_stale_id_then_commit_leaves_one_entry_with_the_new_floor,
            replayed_ids_raise_the_mark_for_the_next_commit,
            raise_last_committed_sequence_number_is_a_persistent_max,
            remove_entry_for_deletes_the_entry_and_keeps_the_mark,
            first_committed_sequence_number_is_the_exact_floor,
            skip_deletes_until_excludes_old_deletes_except_the_latest,
            skip_deletes_pushdown_gives_exactly_the_results_of_the_equivalent_filter,
            bundle_clear_resets_commit_numbering,
            high_water_mark_survives_a_restart_without_writes,
            // factory, bundle, lifecycle (API-5.0 1, BEHAVIOR 9.1, 9.5)
            initialize_wires_a_server_bundle,
            initialize_twice_with_equal_locations_returns_the_same_bundle,
            bundle_for_is_none_before_initialize_and_for_other_at_signs,
            initialize_at_other_locations_is_a_storage_conflict_listing_the_fields,
            equivalent_paths_name_the_same_bundle_and_other_directories_conflict,
            two_at_signs_in_one_factory_are_isolated,
            two_factories_are_independent,
            factory_close_is_idempotent_and_reinitialize_reopens_the_same_data,
            a_bundle_closed_directly_counts_as_absent_and_is_rebuilt,
            close_for_closes_only_that_at_sign,
            every_store_call_on_a_closed_bundle_is_store_closed,
            clear_empties_the_stores_resets_numbering_and_keeps_handles_usable,
            client_bundle_has_only_a_commit_log_free_keystore,
            config_of_another_backend_type_is_invalid_config,
            malformed_at_signs_are_invalid_config,
            restart_cycles_keep_every_value_and_never_lower_the_mark,
            // rich keystore surface (API-5.0 2.2-2.7, 3.3, 3.6, 9)
            scan_keys_filters_by_each_key_pattern_field_and_ands_them,
            scan_keys_orders_pages_and_puts_missing_fields_last,
            scan_keys_hides_expired_and_unborn_keys_at_the_boundary,
            exists_agrees_with_get_scan_keys_and_get_keys,
            snapshot_reads_live_state_and_fails_after_release,
            transaction_applies_puts_as_put_all_and_returns_the_body_value,
            transaction_body_error_applies_nothing_and_returns_the_error,
            transaction_reads_see_the_buffer_over_the_store,
            transaction_latest_op_per_key_wins_in_the_order_of_last_ops,
            transaction_handles_reject_bad_keys_reuse_and_discard_on_drop,
            stats_count_records_expiry_availability_and_creation_edges,
            query_by_path_matches_values_read_as_json,
            next_available_at_and_peek_newly_available_follow_the_availability_index,
            restore_keeps_every_field_without_commit_or_event_and_is_idempotent,
            restore_indexes_follow_the_stored_metadata,
            asserted_timestamps_reach_the_time_indexes,
            bad_input_to_rich_methods_is_typed_and_changes_nothing,
            // notification keystore surface (API-5.0 2, 5.4, 9)
            notification_get_many_and_remove_many_count_present_ids,
            notification_exists_and_changes_follow_put_and_remove,
            notification_snapshot_reads_live_state_and_scans_only_the_unrestricted_pattern,
            notification_transaction_applies_atomically_or_not_at_all,
            notification_stats_count_ttls_and_date_edges,
            notification_expiry_queries_use_the_effective_expiry,
            notification_expiry_index_survives_removes_clear_compact_and_reopen,
            notification_bad_input_is_typed_and_changes_nothing,
            // migration, snapshot and logical backup (API-5.0 7, BEHAVIOR 9.4)
            restore_writes_the_value_verbatim_without_commit_or_event,
            access_replay_and_notification_put_keep_every_field,
            migrate_copies_every_store_and_matches_the_source,
            migrate_drops_orphans_and_keeps_tombstones_and_expired_keys,
            migrate_and_import_refuse_a_non_empty_target,
            migrate_skips_stores_absent_on_either_side,
            snapshot_differences_follow_the_tolerance_rule,
            backup_round_trip_matches_the_source,
            backup_import_refuses_a_damaged_stream_and_writes_nothing,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::cases::$case(&backend).await;
            }
        )*
    };
}
