/* Every test, one line each: TEST(name) where test-<file>.c has
 * TEST_IMPL(name). CMake reads this list to register one ctest per test. */
#define TEST_LIST(TEST)                                              \
  /* test-buf.c */                                                   \
  TEST(buf_append_printf)                                            \
  TEST(buf_html_escape)                                              \
  /* test-builder.c */                                               \
  TEST(builder_strings_dedup)                                        \
  TEST(builder_locations_dedup)                                      \
  TEST(builder_frames)                                               \
  TEST(builder_sample_merge)                                         \
  TEST(builder_profile_fields)                                       \
  TEST(builder_mappings)                                             \
  TEST(builder_errors)                                               \
  TEST(builder_pprof_reads)                                          \
  TEST(profile_threadcreate)                                         \
  TEST(profile_block_mutex)                                          \
  /* test-gzip.c */                                                  \
  TEST(gzip_roundtrip)                                               \
  /* test-maps.c */                                                  \
  TEST(maps_read_exec)                                               \
  /* test-threads.c */                                               \
  TEST(threads_read_names)                                           \
  /* test-text.c */                                                  \
  TEST(text_threadcreate_stackless)                                  \
  TEST(text_sort_labels)                                             \
  /* test-http.c (unit) */                                           \
  TEST(http_clean_path)                                              \
  TEST(http_unescape)                                                \
  TEST(http_query_get)                                               \
  TEST(http_loopback)                                                \
  TEST(http_head_order)                                              \
  /* test-routes.c (integration) */                                  \
  TEST(routes_index)                                                 \
  TEST(routes_redirect)                                              \
  TEST(routes_redirect_query)                                        \
  TEST(routes_unclean_path)                                          \
  TEST(routes_cmdline)                                               \
  TEST(routes_unknown_profile)                                       \
  TEST(routes_not_found)                                             \
  TEST(routes_threadcreate_proto)                                    \
  TEST(routes_block_mutex_proto)                                     \
  TEST(routes_pprof_reads_all)                                       \
  TEST(routes_debug1)                                                \
  TEST(routes_seconds_errors)                                        \
  TEST(routes_seconds_too_long)                                      \
  TEST(routes_threadcreate_delta)                                    \
  TEST(routes_head)                                                  \
  TEST(routes_post)                                                  \
  TEST(routes_method_not_allowed)                                    \
  TEST(routes_token)                                                 \
  TEST(routes_url_address)                                           \
  /* test-badinput.c (integration) */                                \
  TEST(badinput_malformed_request)                                   \
  TEST(badinput_headers_too_large)                                   \
  TEST(badinput_url_too_long)                                        \
  TEST(badinput_body_too_large)                                      \
  TEST(badinput_keepalive)                                           \
  TEST(badinput_pipelining)                                          \
  TEST(badinput_connection_storm)                                    \
  TEST(badinput_idle_timeout)                                        \
  TEST(badinput_slow_client)                                         \
  TEST(badinput_disconnect_mid_response)                             \
  TEST(badinput_stop_in_flight)                                      \
  TEST(badinput_env_garbage)                                         \
  TEST(badinput_env_port_in_use)                                     \
  TEST(badinput_env_public_needs_token)                              \
  TEST(badinput_env_disabled)                                        \
  TEST(badinput_env_banner)                                          \
  TEST(badinput_unref_exits)                                         \
  /* test-stall.c (unit, then integration) */                        \
  TEST(stall_parse_syscall)                                          \
  TEST(stall_record_split)                                           \
  TEST(stall_site_classify)                                          \
  TEST(stall_bad_options)                                            \
  TEST(stall_block_profile)                                          \
  TEST(stall_block_delta)                                            \
  TEST(stall_second_loop)                                            \
  TEST(stall_report_stuck_loop)                                      \
  TEST(stall_outside_loop)                                           \
  TEST(stall_bad_env)                                                \
  TEST(mutex_contention_profile)                                     \
  /* test-capture.c */                                               \
  TEST(stall_capture_epilogue)                                       \
  TEST(unwind_zero_return_not_complete)                              \
  /* test-handles.c (integration) */                                 \
  TEST(handles_counts)                                               \
  TEST(handles_pprof_base)                                           \
  TEST(handles_delta)                                                \
  TEST(handles_two_loops)                                            \
  TEST(handles_sliced)                                               \
  TEST(handles_layout_fallback)                                      \
  TEST(libuv_layout_probe)                                           \
  TEST(handles_large_answer)                                         \
  TEST(handles_slow_walk)                                            \
  TEST(handles_track_preload)                                        \
  TEST(handles_track_linked)                                         \
  TEST(handles_track_wrap)                                           \
  /* test-symbolize.c (unit, then integration) */                    \
  TEST(symbolize_functions)                                          \
  TEST(symbolize_sizes)                                              \
  TEST(symbolize_plt)                                                \
  TEST(symbolize_inlined)                                            \
  TEST(symbolize_libc)                                               \
  TEST(symbolize_dlopen)                                             \
  TEST(symbolize_reset)                                              \
  TEST(symbolize_builder)                                            \
  TEST(symbolize_text_frames)                                        \
  TEST(symbolize_demangle)                                           \
  TEST(symbol_get)                                                   \
  TEST(symbol_post)                                                  \
  TEST(symbol_pprof_remote)                                          \
  TEST(symbol_served_protos)                                         \
  /* test-debuginfo.c (unit, then integration) */                    \
  TEST(debuginfo_debuglink)                                          \
  TEST(debuginfo_build_id)                                           \
  TEST(debuginfo_crc)                                                \
  TEST(debuginfo_minidebuginfo)                                      \
  TEST(debuginfo_module_replaced)                                    \
  TEST(debuginfo_no_network)                                         \
  TEST(debuginfo_stripped_host)                                      \
  /* test-jit.c */                                                   \
  TEST(jit_perf_map)                                                 \
  TEST(jit_perf_map_appended)                                        \
  TEST(jit_perf_map_garbage)                                         \
  TEST(jit_perf_map_bounds)                                          \
  TEST(jit_perf_map_model)                                           \
  TEST(jit_profile)                                                  \
  /* test-heap.c (unit, then integration) */                         \
  TEST(heap_fixtures_parse)                                          \
  TEST(heap_fixture_strip)                                           \
  TEST(heap_parse_garbage)                                           \
  TEST(heap_unbias_go)                                               \
  TEST(heap_fixture_profile)                                         \
  TEST(heap_fixture_text)                                            \
  TEST(heap_no_jemalloc)                                             \
  TEST(heap_jemalloc_linked)                                         \
  TEST(heap_jemalloc_preload)                                        \
  TEST(heap_jemalloc_static)                                         \
  TEST(heap_jemalloc_base)                                           \
  TEST(heap_jemalloc_own_unsampled)                                  \
  TEST(heap_jemalloc_delta)                                          \
  TEST(heap_jemalloc_debug1_pprof)                                   \
  TEST(heap_jemalloc_ticks)                                          \
  TEST(heap_jemalloc_off)                                            \
  TEST(heap_jemalloc_no_accum)                                       \
  TEST(heap_jemalloc_activate)                                       \
  /* test-cpu.c (unit, integration, soaks) */                        \
  TEST(cpu_seconds_parse)                                            \
  TEST(cpu_index_row)                                                \
  TEST(cpu_bad_seconds)                                              \
  TEST(cpu_ratio)                                                    \
  TEST(cpu_overlap)                                                  \
  TEST(cpu_disconnect)                                               \
  TEST(cpu_back_to_zero)                                             \
  TEST(cpu_cap)                                                      \
  TEST(cpu_fork)                                                     \
  TEST(cpu_stop_in_flight)                                           \
  TEST(cpu_sigprof_coexists)                                         \
  TEST(cpu_pprof_top)                                                \
  TEST(cpu_soak_short)                                               \
  TEST(cpu_soak_60s)                                                 \
  /* test-metrics.c (integration: Prometheus, promtool, Chromium) */ \
  TEST(metrics_prometheus)                                           \
  TEST(metrics_format)                                               \
  TEST(timeline_csv)                                                 \
  TEST(timeline_errors)                                              \
  TEST(timeline_handles)                                             \
  TEST(timeline_chromium)                                            \
  TEST(metrics_in_process)                                           \
  TEST(timeline_worker_exits)                                        \
  /* test-stacks.c */                                                \
  TEST(stacks_intern_keys)                                           \
  TEST(stacks_collect_many)                                          \
  TEST(builder_sample_new)                                           \
  /* test-history.c */                                               \
  TEST(history_thin_policy)                                          \
  TEST(history_cheapest)                                             \
  TEST(history_roundtrip)                                            \
  TEST(history_budget)                                               \
  TEST(history_too_small)                                            \
  TEST(history_bad_input)                                            \
  TEST(history_env)                                                  \
  TEST(history_chart_picks)                                          \
  /* test-recorder.c */                                              \
  TEST(recorder_writes)                                              \
  TEST(recorder_unwritable)                                          \
  TEST(recorder_full)                                                \
  TEST(recorder_percent)                                             \
  /* test-server.c (integration) */                                  \
  TEST(server_redirect_header_injection)                             \
  TEST(server_redirect_same_origin)                                  \
  TEST(server_host_rule)                                             \
  TEST(server_token_before_body)                                     \
  TEST(server_token_pace)                                            \
  TEST(server_short_token)                                           \
  TEST(server_idle_eviction)                                         \
  TEST(server_connection_flood)                                      \
  TEST(server_half_close)                                            \
  TEST(server_upgrade_keepalive)                                     \
  TEST(server_accept_enomem)                                         \
  /* test-sweep.c (integration) */                                   \
  TEST(sweep_every_endpoint)                                         \
  TEST(sweep_block_mutex_delta)                                      \
  /* test-notes.c */                                                 \
  TEST(maps_note_bounds)                                             \
  /* test-unwind.c */                                                \
  TEST(unwind_rules_match_libdw)                                     \
  TEST(unwind_rules_after_reload)                                    \
  /* test-ui.c (unit, then integration) */                           \
  TEST(ui_accepts_gzip)                                              \
  TEST(ui_etag_matches)                                              \
  TEST(ui_routes)                                                    \
  /* test-bounds.c (integration) */                                  \
  TEST(symbol_addresses_cap)                                         \
  TEST(symbol_cache_bounded)                                         \
  /* test-worker.c (unit, integration) */                            \
  TEST(worker_close_never_waits)                                     \
  TEST(worker_two_servers_take_turns)                                \
  TEST(worker_stop_during_symbol)                                    \
  TEST(worker_exclusive_after_job)                                   \
  TEST(worker_restart_during_job)                                    \
  /* test-fuzzfound.c (what the fuzzers found) */                    \
  TEST(unwind_libdw_across_reloads)                                  \
  TEST(unwind_after_call_bounds)                                     \
  TEST(heap_rows_of_one_stack_saturate)                              \
  TEST(server_peer_gone_no_sigpipe)                                  \
  /* test-faults.c (fault injection) */                              \
  TEST(faults_alloc_sweep)                                           \
  TEST(faults_emfile_flood)                                          \
  TEST(faults_memfd_and_enospc)                                      \
  TEST(faults_no_thread)                                             \
  /* end */
