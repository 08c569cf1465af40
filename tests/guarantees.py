# ruff: noqa: E501  (test ids and the lines each break replaces are quoted whole)
"""Breaks each guarantee the pipeline makes, once, and runs the test that must catch it (`make guarantees`).

Each entry replaces one line of the platform's code with a broken version, runs the test that covers the
guarantee, and restores the file whatever happens. A test that still passes with its guarantee broken is
printed as MISSED and the run fails: the test proves nothing and needs strengthening.

    python tests/guarantees.py          # every break
    python tests/guarantees.py 0 6      # some, by number
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

L = "layers/shared/smsplatform/"
T = "tests/integration/"
BREAKS = [
    (
        "claim without FOR UPDATE SKIP LOCKED",
        L + "sending/sender.py",
        "                       FOR UPDATE OF l SKIP LOCKED)",
        "                       )",
        T + "test_send_faults.py::test_a_sender_claiming_a_batch_another_holds_gets_none_of_its_rows_and_does_not_wait",
    ),
    (
        "drop the raise in the receipts function",
        L + "sending/receipts.py",
        "        raise ReceiptsNotYetApplicableError(",
        "        print(",
        T
        + "test_receipts.py::test_the_receipts_function_hands_an_early_receipt_back_to_the_queue_until_the_send_is_recorded",
    ),
    (
        "remove the address check from http_post",
        L + "sending/status_callbacks.py",
        "    if not addresses or not (settings.callback_allow_http or all(_public(a) for a in addresses)):",
        "    if not addresses:",
        T + "test_callback_destinations.py",
    ),
    (
        "record a transient failure as queued for a cancelled campaign",
        L + "sending/sender.py",
        "                if stopped:",
        "                if False:",
        T + "test_cancel_mid_send.py",
    ),
    (
        "resend an in-doubt reclaimed row to a non-idempotent provider",
        L + "sending/sender.py",
        "if item.in_doubt and not provider.idempotent:",
        "if False:",
        T
        + "test_send_faults.py::test_after_a_crash_between_the_call_and_recording_nothing_is_sent_again_and_the_unknown_is_refunded",
    ),
    (
        "retry an ambiguous (5xx) answer as transient",
        L + "providers/base.py",
        "            if exc.in_doubt and not self.idempotent:",
        "            if False:",
        T + "test_send_faults.py::test_every_provider_fault_ends_final_with_at_most_one_copy_each",
    ),
    (
        "fail over a message in doubt",
        L + "providers/base.py",
        'if result.outcome != "transient" or result.in_doubt:',
        'if result.outcome != "transient":',
        T
        + "test_providers.py::test_a_message_in_doubt_with_an_idempotent_provider_is_retried_there_and_never_failed_over",
    ),
    (
        "ignore Retry-After",
        L + "sending/sender.py",
        "delay_seconds=max(retry_delay(attempt, settings.send_retry_base_seconds), math.ceil(asked)),",
        "delay_seconds=retry_delay(attempt, settings.send_retry_base_seconds),",
        T
        + "test_send_faults.py::test_a_throttled_batch_comes_back_after_the_providers_retry_after_or_the_backoff_if_longer",
    ),
    (
        "no re-announcement of overdue callbacks",
        L + "sending/status_callbacks.py",
        '    return [row["user_id"] for row in rows]\n\n\ndef purge_settled',
        "    return []\n\n\ndef purge_settled",
        T + "test_lost_announcements.py::test_callbacks_whose_announcement_was_lost_are_delivered_after_the_sweep",
    ),
    (
        "no re-announcement of lost batches",
        L + "sending/recovery.py",
        'queues.send_many("send", (SendBatch(kind=kind, id=ref, batch=batch) for kind, ref, batch in again))',
        "pass",
        T + "test_lost_announcements.py",
    ),
    (
        "callback backoff without its one-hour cap",
        L + "sending/status_callbacks.py",
        "least(3600, %(base)s * 2 ^ (s.attempts - 1))",
        "%(base)s * 2 ^ (s.attempts - 1)",
        T
        + "test_status_callbacks.py::test_a_callback_is_retried_on_a_doubling_schedule_capped_at_an_hour_then_given_up",
    ),
    (
        "callbacks that never give up",
        L + "sending/status_callbacks.py",
        "WHEN s.attempts >= %(max)s THEN 'failed'",
        "WHEN s.attempts >= %(max)s + 1000 THEN 'failed'",
        T
        + "test_status_callbacks.py::test_a_callback_is_retried_on_a_doubling_schedule_capped_at_an_hour_then_given_up",
    ),
    (
        "settlement that refunds nothing",
        L + "billing/settlement.py",
        "        if to_refund > 0:",
        "        if to_refund > 10**9:",
        T + "test_campaigns_api.py::test_an_api_send_with_failures_settles_what_went_out_and_refunds_the_rest",
    ),
    (
        "dispatcher keeps a crashed attempt's rows",
        L + "sending/dispatch.py",
        '            other.execute("DELETE FROM sms_delivery_logs WHERE campaign_id = %s", (campaign_id,))',
        "            pass",
        T
        + "test_dispatcher.py::test_a_dispatcher_that_dies_after_materialising_starts_over_and_sends_each_recipient_once",
    ),
    (
        "dispatcher workers number batches alike",
        L + "sending/dispatch.py",
        "               SELECT c.*, %(first_batch)s + ((row_number() OVER ({order})) - 1) / %(size)s * %(workers)s",
        "               SELECT c.*, %(first_batch)s + ((row_number() OVER ({order})) - 1) / %(size)s",
        T + "test_dispatcher.py::test_each_worker_numbers_its_own_batches_and_none_collide",
    ),
    (
        "dispatcher reserves for an empty audience",
        L + "sending/dispatch.py",
        "            if recipients == 0:\n                raise _NoRecipientsError(skipped)",
        "            pass",
        T + "test_dispatcher.py::test_a_campaign_whose_audience_has_nobody_to_message_fails_with_nothing_reserved",
    ),
    (
        "retry_delay without SQS's cap",
        L + "sending/sender.py",
        "return int(min(900, base_seconds * 2 ** max(0, attempt - 1)))",
        "return int(base_seconds * 2 ** max(0, attempt - 1))",
        "tests/unit/test_retry_delay.py",
    ),
    (
        "spend and refund without the account lock",
        L + "billing/ledger.py",
        '    conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,))\n    held',
        "    held",
        T + "test_ledger.py::test_concurrent_spends_and_refunds_never_take_more_than_was_reserved",
    ),
    (
        "inbound goes to the first account, not the last",
        L + "sending/inbound.py",
        "ORDER BY d.created_at DESC LIMIT 1)) AS user_id",
        "ORDER BY d.created_at ASC LIMIT 1)) AS user_id",
        T + "test_inbound.py::test_a_reply_that_names_no_number_goes_to_the_account_that_messaged_the_sender_last",
    ),
    (
        "simulator outbox keyed by message id again (idempotent by default)",
        L + "core/config.py",
        "    simulator_idempotent: bool = False",
        "    simulator_idempotent: bool = True",
        T
        + "test_send_faults.py::test_after_a_crash_between_the_call_and_recording_nothing_is_sent_again_and_the_unknown_is_refunded",
    ),
    (
        "claim sends to a number that opted out mid-campaign",
        L + "sending/sender.py",
        "WHEN o.phone_number IS NOT NULL THEN 'opted_out' END AS stop",
        "WHEN false THEN 'opted_out' END AS stop",
        T + "test_account_control.py::test_a_stop_during_a_campaign_stops_that_numbers_messages_still_waiting",
    ),
    (
        "claim for a suspended account",
        L + "sending/sender.py",
        "                       AND EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id AND u.account_status = 'active')\n",
        "",
        T
        + "test_account_control.py::test_a_suspended_account_sends_nothing_and_picks_up_where_it_stopped_when_resumed",
    ),
    (
        "Idempotency-Keys shared by every credential of the account",
        L + "api/resolver.py",
        'credential = str(authorizer.get("credential_id") or authorizer.get("credential") or "")',
        'credential = ""',
        T + "test_idempotency.py::test_a_key_is_answered_only_to_the_credential_that_used_it",
    ),
    (
        "a campaign sends as any sender id it names",
        L + "campaigns/campaigns.py",
        "        sender_id = sender_ids.resolve(conn, user_id, sender_id)",
        "        sender_id = sender_id.strip()",
        T + "test_sender_ids.py::test_an_account_cannot_send_as_a_name_or_number_it_does_not_hold",
    ),
    (
        "the sweep leaves a dead sender's rows of a cancelled campaign",
        L + "sending/recovery.py",
        "WHERE status IN ('cancelled', 'failed') AND updated_at > now() - interval '1 day'",
        "WHERE false AND updated_at > now() - interval '1 day'",
        T + "test_cancel_mid_send.py::test_rows_held_by_a_sender_that_died_end_final_once_its_lease_is_over",
    ),
    (
        "a callback POST without its total deadline",
        L + "sending/status_callbacks.py",
        "        timer.start()",
        "        pass",
        T
        + "test_status_callbacks.py::test_a_slow_drip_endpoint_is_cut_off_at_the_total_deadline_and_the_attempt_counts",
    ),
    (
        "store a replayed inbound message again (and reply to it again)",
        L + "sending/inbound.py",
        "               ON CONFLICT (provider, external_id) DO NOTHING",
        "               ON CONFLICT (provider, external_id) DO UPDATE SET received_at = excluded.received_at",
        T + "test_two_way.py::test_replayed_inbound_webhooks_change_nothing_and_send_nothing_twice",
    ),
    (
        "the claim fails an opt-out confirmation as opted_out",
        L + "sending/sender.py",
        "                                          AND l.inbound_reply IS DISTINCT FROM 'opt_out'",
        "                                          AND true",
        T + "test_two_way.py::test_stop_in_three_languages_opts_out_and_confirms_once_each_and_start_opts_back_in",
    ),
    (
        "answer HELP from an opted-out number",
        L + "sending/replies.py",
        """        elif found["opted_out"] and row["keyword"] != "opt_out":""",
        "        elif False:",
        T + "test_two_way.py::test_stop_in_three_languages_opts_out_and_confirms_once_each_and_start_opts_back_in",
    ),
    (
        "message history not scoped to the account",
        L + "sending/history.py",
        "                 WHERE user_id = %(user)s {conditions} {keyset}",
        "                 WHERE true {conditions} {keyset}",
        T
        + "test_two_way.py::test_message_history_lists_every_outbound_message_of_the_account_only_with_filters_and_pages",
    ),
    (
        "send a callback on a kept-alive connection the endpoint closed, without replacing it",
        L + "sending/status_callbacks.py",
        "            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):",
        "            except ZeroDivisionError:",
        "tests/unit/test_callback_connections.py",
    ),
    (
        "charge every destination the same (ignore the price list)",
        L + "sending/dispatch.py",
        "CASE WHEN p.never THEN 0 ELSE s.segments * p.price END",
        "CASE WHEN p.never THEN 0 ELSE s.segments END",
        T + "test_pricing_and_windows.py::test_preview_stats_and_ledger_agree_over_mixed_prices_and_a_blocked_country",
    ),
    (
        "send a blocked destination in a campaign",
        L + "sending/dispatch.py",
        "                 FROM candidates c WHERE c.price IS NOT NULL),",
        "                 FROM candidates c WHERE true),",
        T + "test_pricing_and_windows.py::test_preview_stats_and_ledger_agree_over_mixed_prices_and_a_blocked_country",
    ),
    (
        "claim messages held for their sending window",
        L + "sending/sender.py",
        "AND ((l.status = 'queued' AND NOT l.held",
        "AND ((l.status = 'queued'",
        T
        + "test_pricing_and_windows.py::test_a_campaign_over_three_zones_sends_each_only_inside_its_window_and_completes",
    ),
    (
        "send a batch whose window closed while it waited",
        L + "sending/sender.py",
        "                windows.rehold(conn, reference_id, batch, context.window, now)",
        "                pass",
        T + "test_pricing_and_windows.py::test_a_batch_that_arrives_after_its_window_closed_waits_for_the_next_opening",
    ),
    (
        "wake a scheduled message before its time",
        L + "sending/windows.py",
        "                  AND l.not_before <= %s",
        "                  AND l.not_before <= %s + interval '1 hour'",
        T
        + "test_pricing_and_windows.py::test_a_scheduled_message_waits_can_be_cancelled_and_otherwise_goes_at_its_time",
    ),
    (
        "wake the messages of a campaign still being dispatched",
        L + "sending/windows.py",
        "                  AND NOT EXISTS (SELECT 1 FROM sms_campaigns c WHERE c.id = l.campaign_id AND c.status <> 'sending')\n",
        "",
        T
        + "test_pricing_and_windows.py::test_a_campaign_still_being_dispatched_keeps_its_messages_held_until_it_is_sending",
    ),
    (
        "never expire what waits past its validity period",
        L + "sending/recovery.py",
        "        expired = _expired(conn, now)",
        "        expired = []",
        T + "test_pricing_and_windows.py::test_a_validity_period_expires_what_still_waits_and_refunds_it_exactly",
    ),
    (
        "a low-balance alert at every movement below the threshold, not at the crossing",
        L + "billing/ledger.py",
        "    if threshold is not None and entry.credits_before >= threshold > entry.credits_after:",
        "    if threshold is not None and threshold > entry.credits_after:",
        T
        + "test_pricing_and_windows.py::test_crossing_the_low_balance_threshold_emits_one_signed_event_and_an_audit_row",
    ),
    (
        "sign Twilio-form callbacks with the JSON secret instead of the Twilio auth token",
        L + "sending/status_callbacks.py",
        '            twilio.SIGNATURE_HEADER: twilio.signature(keys.twilio, row["url"], fields.items()),',
        '            twilio.SIGNATURE_HEADER: twilio.signature(keys.secret, row["url"], fields.items()),',
        T + "test_twilio_api.py::test_create_fetch_and_a_signed_status_callback",
    ),
    (
        "accept Basic auth whatever AccountSid names it",
        L + "accounts/principals.py",
        "    if username != twilio_account_sid(principal.user_id):",
        "    if False:",
        T + "test_twilio_api.py::test_another_accounts_sid_or_message_is_not_reachable",
    ),
    (
        "send to an opted-out number through the Twilio-compatible API",
        L + "api/twilio_messages.py",
        "            if opt_outs.is_opted_out(conn, principal.user_id, number):",
        "            if False:",
        T + "test_twilio_api.py::test_twilios_error_codes_reach_the_sdk",
    ),
    (
        "let single sends past the account's queue limit",
        L + "sending/messages.py",
        "    if waiting + adding > limit:",
        "    if False:",
        T + "test_messages_api.py::test_a_send_past_the_accounts_queue_limit_is_refused_and_writes_nothing",
    ),
    (
        "drop a month whose archive does not hold every row",
        L + "core/archive.py",
        "    if (found_rows, found_digest) != (rows, digest):",
        "    if False:",
        T + "test_archive.py::test_an_archive_that_does_not_hold_every_row_is_never_dropped",
    ),
    (
        "drop a month without counting it again after the detach",
        L + "core/archive.py",
        '    if (rows, digest) != (state["rows"], state["checksum"]):',
        "    if False:",
        T + "test_archive.py::test_a_crash_between_export_and_drop_loses_nothing_and_the_next_run_finishes",
    ),
    (
        "export every account's messages",
        L + "sending/exports.py",
        "               FROM sms_delivery_logs WHERE user_id = {user}",
        "               FROM sms_delivery_logs WHERE {user} IS NOT NULL",
        T + "test_exports.py::test_an_export_holds_exactly_the_accounts_messages_and_its_filters_narrow_it",
    ),
    (
        "leave rows in the default partition",
        L + "core/maintenance.py",
        "    if default_partition_rows(conn, table) == 0:",
        "    if True:",
        T + "test_maintenance.py::test_rows_in_the_default_partition_are_moved_out_and_the_other_steps_still_run",
    ),
    (
        "count a campaign's credits as its messages",
        "sql/0020_campaign_message_counts.sql",
        "    SELECT campaign_id, sms_message_state(status, held, error_code), count(*), sum(cost)",
        "    SELECT campaign_id, sms_message_state(status, held, error_code), count(*), count(*)",
        T + "test_campaign_counters.py::test_stats_are_exact_at_every_step_of_a_send_and_after_the_counters_are_folded",
    ),
    (
        "count a message's new state without leaving its old one",
        "sql/0020_campaign_message_counts.sql",
        "              FROM old_rows WHERE campaign_id IS NOT NULL) changes",
        "              FROM old_rows WHERE false) changes",
        T + "test_campaign_counters.py::test_stats_are_exact_at_every_step_of_a_send_and_after_the_counters_are_folded",
    ),
    (
        "fold a campaign's counters without the rows appended since",
        L + "campaigns/campaigns.py",
        "               SELECT campaign_id, state, sum(messages), sum(credits), true FROM gone GROUP BY 1, 2",
        "               SELECT campaign_id, state, max(messages), sum(credits), true FROM gone GROUP BY 1, 2",
        T + "test_campaign_counters.py::test_stats_are_exact_at_every_step_of_a_send_and_after_the_counters_are_folded",
    ),
    (
        "settle a campaign while a sender holds some of its messages",
        L + "billing/settlement.py",
        'IN_FLIGHT_STATES = ("scheduled", "queued", "waiting", "sending")',
        'IN_FLIGHT_STATES = ("scheduled", "queued", "waiting")',
        T
        + "test_send_faults.py::test_after_a_crash_between_the_call_and_recording_nothing_is_sent_again_and_the_unknown_is_refunded",
    ),
    (
        "count a campaign's rows again when maintenance moves them out of the default partition",
        L + "core/maintenance.py",
        """        conn.execute("SET LOCAL sms.moving_partition_rows = 'on'")  # counted once already (sql/0020)""",
        "        pass",
        T + "test_maintenance.py::test_rows_in_the_default_partition_are_moved_out_and_the_other_steps_still_run",
    ),
    (
        "complete a campaign while its audience is still being released",
        L + "billing/settlement.py",
        '        return _releasing(conn, reference_id) or _counted(conn, "messages", reference_id, IN_FLIGHT_STATES) > 0',
        '        return _counted(conn, "messages", reference_id, IN_FLIGHT_STATES) > 0',
        T + "test_chunked_release.py::test_the_first_batches_are_sent_while_the_audience_is_still_being_released",
    ),
    (
        "close an account without ending its campaigns' releases",
        L + "sending/holds.py",
        '    campaigns.end_releases(conn, [row["id"] for row in cancelled])  # nothing more is materialised for them',
        "",
        T + "test_chunked_release.py::test_closing_the_account_mid_release_ends_the_release_and_settles",
    ),
    (
        "commit a chunk without moving its share's progress past it",
        L + "sending/dispatch.py",
        "              SET after_contact = coalesce(%(last)s, after_contact), next_batch = %(next)s, chunk_rows = %(grown)s,",
        "              SET after_contact = after_contact, next_batch = %(next)s, chunk_rows = %(grown)s,",
        T
        + "test_chunked_release.py::test_a_dispatcher_that_dies_mid_release_is_resumed_by_the_scheduler_without_a_duplicate",
    ),
    (
        "commit a chunk without reserving its credits",
        L + "sending/dispatch.py",
        '        ledger.reserve(worker, campaign["user_id"], row["credits"], campaign["id"], "campaign")',
        "        pass",
        T
        + "test_chunked_release.py::test_a_balance_that_runs_short_mid_release_sends_and_charges_nothing_beyond_what_was_reserved",
    ),
    (
        "delete the sent rows of a release given up",
        L + "campaigns/campaigns.py",
        "DELETE FROM sms_delivery_logs l USING given_up g WHERE l.campaign_id = g.id AND g.was = 'queued'),",
        "DELETE FROM sms_delivery_logs l USING given_up g WHERE l.campaign_id = g.id),",
        T + "test_chunked_release.py::test_a_release_that_never_resumes_fails_and_keeps_what_it_sent_charged",
    ),
    (
        "leave a release that ran out of time without a message to carry it on",
        L + "sending/dispatch.py",
        '                queues.send_many("release", [Release(campaign_id=campaign_id)])',
        "                pass",
        T + "test_chunked_release.py::test_a_release_out_of_time_hands_the_rest_to_a_fresh_release_message",
    ),
    (
        "end a range at a chunk whose members were not all recipients (opted out)",
        L + "sending/dispatch.py",
        "                  (SELECT count(*) FROM members)::int AS scanned,",
        "                  (SELECT count(*) FROM audience)::int AS scanned,",
        T + "test_chunked_release.py::test_overlapping_groups_and_opted_out_members_are_released_in_chunks_once_each",
    ),
    (
        "stop a campaign without ending its release (a dead dispatcher's campaign stays releasing)",
        L + "campaigns/campaigns.py",
        "    end_releases(conn, [campaign_id])\n",
        "",
        T + "test_chunked_release.py::test_a_cancel_after_its_dispatcher_died_ends_the_release_and_settles",
    ),
    (
        "send an invocation's batches one after another",
        "functions/sender/app.py",
        "    outcome = await asyncio.to_thread(process_batch, record.body, get_settings())",
        "    outcome = process_batch(record.body, get_settings())",
        T + "test_send_faults.py::test_the_batches_of_one_invocation_are_sent_side_by_side_each_with_its_own_text_once",
    ),
    (
        "let the local gateway run two API requests at once (a handler reads the other's event)",
        "local/gateway.py",
        "            with _ONE_RESOLVER_AT_A_TIME:",
        "            if True:",
        T + "test_receipts.py::test_two_receipt_webhooks_at_once_each_enqueue_their_own_receipts",
    ),
    (
        "index the status again (every claim and receipt adds index entries)",
        "sql/0022_hot_message_writes.sql",
        "    WHERE phase IS NOT NULL;",
        "    WHERE phase IS NOT NULL;\nCREATE INDEX idx_delivery_logs_status_again ON sms_delivery_logs (campaign_id, status);",
        T + "test_message_writes.py::test_the_claim_the_record_and_the_receipt_update_each_row_in_place",
    ),
    (
        "index the provider's id on the logs again (every record adds index entries)",
        "sql/0027_open_batches.sql",
        "DROP INDEX idx_delivery_logs_external_id;",
        "-- kept",
        T + "test_message_writes.py::test_the_claim_the_record_and_the_receipt_update_each_row_in_place",
    ),
    (
        "keep a batch open once none of its rows is unsent (the sweeps would read it for good)",
        "sql/0027_open_batches.sql",
        "     WHERE b.reference_id = c.reference_id AND b.batch_number = c.batch_number AND b.unsent <= 0;",
        "     WHERE false;",
        T + "test_open_batches.py::test_the_open_batches_are_the_batches_with_unsent_rows_after_every_write",
    ),
    (
        "count a woken or cancelled row as still held in its batch (the sweep would never look at it)",
        "sql/0027_open_batches.sql",
        "coalesce(sum(change) FILTER (WHERE held), 0)::int AS held,",
        "coalesce(sum(change) FILTER (WHERE held AND change > 0), 0)::int AS held,",
        T + "test_open_batches.py::test_the_open_batches_are_the_batches_with_unsent_rows_after_every_write",
    ),
    (
        "record a send without the provider's id that receipts find it by",
        L + "sending/sender.py",
        "                WHERE external_message_id IS NOT NULL",
        "                WHERE false",
        T + "test_message_writes.py::test_the_claim_the_record_and_the_receipt_update_each_row_in_place",
    ),
    (
        "leave scheduled messages out of the open batches when migrating (no sweep would expire them)",
        "sql/0027_open_batches.sql",
        " WHERE phase IN ('scheduled', 'in_flight') AND coalesce(campaign_id, request_id) IS NOT NULL",
        " WHERE phase = 'in_flight' AND coalesce(campaign_id, request_id) IS NOT NULL",
        T + "test_migrations.py::test_open_batches_and_provider_ids_are_filled_from_the_rows_a_live_database_has",
    ),
    (
        "look for a campaign's queued messages in the account's list by its counters (held ones count as waiting)",
        L + "sending/history.py",
        '            "counted": (ANY_COUNTED, True if status_in_campaign and not phase and not from_open else None),',
        '            "counted": (ANY_COUNTED, True if status_in_campaign and not phase else None),',
        T
        + "test_pricing_and_windows.py::test_a_campaign_over_three_zones_sends_each_only_inside_its_window_and_completes",
    ),
    (
        "give queued rows a phase of their own again (every claim moves the row out of it)",
        "sql/0027_open_batches.sql",
        "    CASE WHEN status IN ('queued', 'sending', 'sent', 'delivered') THEN NULL ELSE status END) STORED;",
        "    CASE WHEN status IN ('sending', 'sent', 'delivered') THEN NULL ELSE status END) STORED;",
        T + "test_message_writes.py::test_the_claim_the_record_and_the_receipt_update_each_row_in_place",
    ),
    (
        "look for a campaign's sent messages in the wrong counter (the list skips ones that are there)",
        L + "sending/messages.py",
        '                   WHERE k.campaign_id = %(campaign)s AND k.state = %(status)s)"""',
        '                   WHERE k.campaign_id = %(campaign)s AND k.state = \'scheduled\')"""',
        T + "test_message_writes.py::test_a_campaigns_messages_are_listed_by_status_without_the_status_in_an_index",
    ),
    (
        "map a status to a phase the database does not derive for it",
        L + "sending/messages.py",
        '    return None if status in ("queued", "sending", "sent", "delivered") else status',
        '    return None if status in ("queued", "sent", "delivered") else status',
        T + "test_message_writes.py::test_phase_of_names_the_phase_the_database_derives_for_every_status",
    ),
    (
        "skip the status callbacks of a campaign whose account names no URL",
        "sql/0023_callbacks_only_where_configured.sql",
        "                          AND settings ->> 'status_callback_url' IS NOT NULL) THEN",
        "                          AND false) THEN",
        T + "test_status_callbacks.py::test_a_campaigns_own_url_is_called_when_its_account_names_none",
    ),
    (
        "give messages random ids again (each insert lands on a random leaf of the primary key)",
        "sql/0028_time_ordered_message_ids.sql",
        "ALTER TABLE sms_delivery_logs ALTER COLUMN id SET DEFAULT uuid_v7();",
        "-- kept",
        T + "test_message_writes.py::test_message_ids_are_time_ordered_so_that_inserts_append_to_the_primary_key",
    ),
    (
        "make a message id's milliseconds those of the transaction, not of the row",
        "sql/0028_time_ordered_message_ids.sql",
        "    SELECT encode(int8send(((extract(epoch FROM clock_timestamp()) * 1000)::bigint << 16)",
        "    SELECT encode(int8send(((extract(epoch FROM now()) * 1000)::bigint << 16)",
        T + "test_message_writes.py::test_message_ids_are_time_ordered_so_that_inserts_append_to_the_primary_key",
    ),
    (
        "archive a month with its unsent messages as they are (their credits stay reserved for rows that go)",
        L + "core/archive.py",
        "        if table in before_export:",
        "        if False:",
        T
        + "test_archive.py::test_messages_still_unsent_when_their_month_is_archived_end_final_and_their_credits_come_back",
    ),
    (
        "commit a month's ended messages before their sends settle (a crash between loses the refund for good)",
        L + "sending/recovery.py",
        '        for row in ended:\n            settlement.settle(conn, row["kind"], row["id"])',
        '        conn.commit()\n        for row in ended:\n            settlement.settle(conn, row["kind"], row["id"])',
        T
        + "test_archive.py::test_messages_still_unsent_when_their_month_is_archived_end_final_and_their_credits_come_back",
    ),
    (
        "owe nothing in the sweep's transaction (a sweep that died before settling leaves credits reserved for good)",
        L + "sending/recovery.py",
        "    if references:\n        kinds, ids = zip(*sorted(references), strict=True)",
        "    if False:\n        kinds, ids = zip(*sorted(references), strict=True)",
        T
        + "test_lost_announcements.py::test_an_api_send_the_sweep_ends_is_settled_by_the_next_tick_when_the_sweep_dies_before_settling_it",
    ),
    (
        "let one owed settlement that fails hold up every later one, tick after tick",
        L + "sending/recovery.py",
        '                "settling failed; the next tick tries again", extra={"reference": str(row["reference_id"])}',
        '                "settling failed", extra={"reference": str(row["reference_id"])}\n            )\n            raise\n            (',
        T
        + "test_lost_announcements.py::test_a_send_whose_settlement_fails_holds_up_no_other_and_is_settled_when_it_can_be",
    ),
    (
        "hand out a connection that sat idle without testing it",
        L + "core/db.py",
        "    if returned is None or not 0 <= time.time() - returned < CHECK_IDLE_SECONDS:",
        "    if returned is None:",
        T + "test_connection_pool.py::test_a_dead_connection_that_sat_idle_is_replaced_unseen",
    ),
    (
        "give a read's connection back to the pool still in autocommit",
        L + "core/db.py",
        "                conn.autocommit = False",
        "                pass",
        T + "test_connection_pool.py::test_reads_run_in_autocommit_and_the_next_writer_gets_a_transaction",
    ),
]


def main(only: list[str]) -> int:
    missed = 0
    for index, (what, path, old, new, test) in enumerate(BREAKS):
        if only and str(index) not in only:
            continue
        file = ROOT / path
        text = file.read_text()
        if text.count(old) != 1:
            print(f"{index:2} STALE   {what}: the line to break is no longer in {path}; update this list")
            missed += 1
            continue
        file.write_text(text.replace(old, new))
        try:
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:logging", "-p", "no:cacheprovider", "-x", test],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=ROOT,
                check=False,
            )
        finally:
            file.write_text(text)
        summary = [line for line in run.stdout.splitlines() if " passed" in line or " failed" in line][-1:]
        missed += run.returncode == 0
        print(f"{index:2} {'CAUGHT' if run.returncode else 'MISSED'}  {what}  [{''.join(summary)}]", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
