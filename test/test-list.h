/* Every test, one line each: TEST(name) where test-<file>.c has
 * TEST_IMPL(name). CMake reads this list to register one ctest per test. */
#define TEST_LIST(TEST)                                                   \
  /* test-buf.c */                                                        \
  TEST(buf_append_printf)                                                 \
  TEST(buf_html_escape)                                                   \
  /* test-builder.c */                                                    \
  TEST(builder_strings_dedup)                                             \
  TEST(builder_locations_dedup)                                           \
  TEST(builder_frames)                                                    \
  TEST(builder_sample_merge)                                              \
  TEST(builder_profile_fields)                                            \
  TEST(builder_mappings)                                                  \
  TEST(builder_errors)                                                    \
  TEST(builder_pprof_reads)                                               \
  TEST(gzip_roundtrip)                                                    \
  TEST(maps_read_exec)                                                    \
  TEST(threads_read_names)                                                \
  TEST(text_threadcreate_stackless)                                       \
  TEST(text_sort_labels)                                                  \
  TEST(profile_threadcreate)                                              \
  TEST(profile_block_mutex)                                               \
  /* test-http.c (unit) */                                                \
  TEST(http_clean_path)                                                   \
  TEST(http_unescape)                                                     \
  TEST(http_query_get)                                                    \
  TEST(http_loopback)                                                     \
  TEST(http_head_order)                                                   \
  /* test-options.c */                                                    \
  /* test-server.c (integration) */                                       \
  /* test-routes.c (integration) */                                       \
  TEST(routes_index)                                                      \
  TEST(routes_redirect)                                                   \
  TEST(routes_redirect_query)                                             \
  TEST(routes_unclean_path)                                               \
  TEST(routes_cmdline)                                                    \
  TEST(routes_unknown_profile)                                            \
  TEST(routes_not_found)                                                  \
  TEST(routes_threadcreate_proto)                                         \
  TEST(routes_block_mutex_proto)                                          \
  TEST(routes_pprof_reads_all)                                            \
  TEST(routes_debug1)                                                     \
  TEST(routes_seconds_errors)                                             \
  TEST(routes_seconds_too_long)                                      \
  TEST(routes_threadcreate_delta)                                         \
  TEST(routes_head)                                                       \
  TEST(routes_post)                                                       \
  TEST(routes_method_not_allowed)                                         \
  TEST(routes_token)                                                      \
  TEST(routes_url_address)                                                \
  /* test-badinput.c (integration) */                                     \
  TEST(badinput_malformed_request)                                        \
  TEST(badinput_headers_too_large)                                        \
  TEST(badinput_url_too_long)                                             \
  TEST(badinput_body_too_large)                                           \
  TEST(badinput_keepalive)                                                \
  TEST(badinput_pipelining)                                               \
  TEST(badinput_connection_storm)                                         \
  TEST(badinput_idle_timeout)                                             \
  TEST(badinput_slow_client)                                              \
  TEST(badinput_disconnect_mid_response)                                  \
  TEST(badinput_stop_in_flight)                                           \
  TEST(badinput_env_garbage)                                              \
  TEST(badinput_env_port_in_use)                                          \
  TEST(badinput_env_public_needs_token)                                   \
  TEST(badinput_env_disabled)                                             \
  TEST(badinput_env_banner)                                               \
  TEST(badinput_unref_exits)                                              \
  /* end */
