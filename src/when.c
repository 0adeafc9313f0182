/* Moments of the history as requests name them: ?base=, ?at= and
 * ?window= take "start" (the oldest kept snapshot, for base and at), a
 * positive duration back from now ("30s", "15m", "2h", "1d", "1h30m",
 * "1.5h") or an RFC 3339 time (the timeline's own "2026-11-26T03:55:55+00:00",
 * or with "Z"). Parsing happens on the loop thread; placing a moment among
 * the kept snapshots, which needs the history and the process's start
 * time, on the worker. Also the note every answer gives of the snapshot it
 * used. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "profile.h"

#define SECOND_NS ((int64_t)1000000000)

static const struct {
  char unit;
  int64_t ns;
} units[] = {
    {'s', SECOND_NS},
    {'m', 60 * SECOND_NS},
    {'h', 3600 * SECOND_NS},
    {'d', 86400 * SECOND_NS},
};

/* "1h30m", "1.5h": numbers with a unit each. Returns 0 and *ns, or -1. */
static int parse_duration(const char* s, int64_t* ns) {
  double total = 0;

  if (*s == '\0')
    return -1;
  while (*s != '\0') {
    char* end;
    double v;
    size_t i;
    if (!isdigit((unsigned char)*s) && *s != '.')
      return -1;
    v = strtod(s, &end);
    if (end == s)
      return -1;
    for (i = 0; i < UV_PPROF__ARRAY_SIZE(units); i++)
      if (*end == units[i].unit)
        break;
    if (i == UV_PPROF__ARRAY_SIZE(units))
      return -1;
    total += v * (double)units[i].ns;
    s = end + 1;
  }
  if (total > 9e18)
    return -1;
  *ns = (int64_t)total;
  return 0;
}

/* RFC 3339: "YYYY-MM-DDTHH:MM:SS", optional fraction, then "Z" or an offset
 * "+HH:MM" / "-HH:MM" (a '+' decoded as ' ' from a query counts as '+').
 * Returns 0 and *ns (since the epoch), or -1. */
static int parse_rfc3339(const char* s, int64_t* ns) {
  struct tm tm;
  const char* p;
  int hh = 0;
  int mm = 0;
  int n = 0;
  time_t t;

  memset(&tm, 0, sizeof(tm));
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
      n != 19)
    return -1;
  p = s + n;
  if (*p == '.')
    for (p++; isdigit((unsigned char)*p); p++)
      ;
  if (*p == 'Z' && p[1] == '\0') {
    hh = mm = 0;
  } else if ((*p == '+' || *p == '-' || *p == ' ') && strlen(p) == 6 &&
             sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2) {
    if (*p == '-') {
      hh = -hh;
      mm = -mm;
    }
  } else {
    return -1;
  }
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  t = timegm(&tm) - (hh * 3600 + mm * 60);
  /* Past 2262 (or before 1678) nanoseconds overflow: far enough. */
  if ((int64_t)t > INT64_MAX / SECOND_NS || (int64_t)t < INT64_MIN / SECOND_NS)
    *ns = t > 0 ? INT64_MAX : INT64_MIN;
  else
    *ns = (int64_t)t * SECOND_NS;
  return 0;
}

int uv_pprof__when_parse(const char* name, const char* s, int64_t now,
                         uv_pprof__when_t* out, char* why, size_t size) {
  memset(out, 0, sizeof(*out));
  snprintf(out->text, sizeof(out->text), "%s", s);
  if (strcmp(s, "start") == 0 && strcmp(name, "window") != 0) {
    out->start = 1;
    return 0;
  }
  if (s[0] == '-') {
    snprintf(why, size,
             "invalid value for \"%s\" - %s is in the future: give how long "
             "ago, a positive duration such as 30s",
             name, s);
    return -1;
  }
  if (parse_duration(s, &out->age_ns) == 0) {
    if (out->age_ns <= 0) {
      snprintf(why, size,
               "invalid value for \"%s\" - must be a positive duration", name);
      return -1;
    }
    out->time_ns = now - out->age_ns;
    return 0;
  }
  if (parse_rfc3339(s, &out->time_ns) == 0) {
    if (out->time_ns > now + SECOND_NS) {
      snprintf(why, size, "invalid value for \"%s\" - %s is in the future",
               name, s);
      return -1;
    }
    out->age_ns =
        out->time_ns > INT64_MIN + now ? now - out->time_ns : INT64_MAX;
    return 0;
  }
  snprintf(why, size,
           "invalid value for \"%s\" - must be a duration back from now such "
           "as 30s, 15m, 2h or 1d, an RFC 3339 time%s",
           name, strcmp(name, "window") != 0 ? ", or \"start\"" : "");
  return -1;
}

/* ---- the process's start ------------------------------------------------ */

/* When the process started (wall clock, ns): /proc/self/stat's start time
 * in clock ticks since boot, plus /proc/stat's boot time. 0 when unknown.
 * Worker thread (reads /proc), once. */
static int64_t process_start(void) {
  static int64_t start = -1;
  char buf[1024];
  unsigned long long ticks = 0;
  unsigned long long btime = 0;
  const char* p;
  FILE* f;
  size_t n;
  int field;

  if (start >= 0)
    return start;
  start = 0;
  f = fopen("/proc/self/stat", "r");
  if (f == NULL)
    return 0;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* Fields after the command name, which may hold spaces: from its ')'. */
  p = strrchr(buf, ')');
  for (field = 2; p != NULL && field < 22; field++)
    p = strchr(p + 1, ' ');
  if (p == NULL || sscanf(p + 1, "%llu", &ticks) != 1)
    return 0;
  f = fopen("/proc/stat", "r");
  while (f != NULL && fgets(buf, sizeof(buf), f) != NULL)
    if (sscanf(buf, "btime %llu", &btime) == 1)
      break;
  if (f != NULL)
    fclose(f);
  if (btime == 0)
    return 0;
  start = (int64_t)btime * SECOND_NS +
          (int64_t)(ticks * SECOND_NS / (uint64_t)sysconf(_SC_CLK_TCK));
  return start;
}

/* ---- placing a moment -----------------------------------------------------
 */

void uv_pprof__format_age(int64_t ns, char* buf, size_t size) {
  int64_t s = ns / SECOND_NS;

  if (s < 0)
    s = 0;
  if (s < 60)
    snprintf(buf, size, "%llds", (long long)s);
  else if (s < 3600)
    snprintf(buf, size, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
  else if (s < 86400)
    snprintf(buf, size, "%lldh%lldm", (long long)(s / 3600),
             (long long)(s % 3600 / 60));
  else
    snprintf(buf, size, "%lldd%lldh", (long long)(s / 86400),
             (long long)(s % 86400 / 3600));
}

int uv_pprof__history_off_reason(char* why, size_t size) {
  uv_pprof__history_stats_t st;

  uv_pprof__history_stats(&st);
  if (st.on && st.kept > 0)
    return 0;
  if (st.on)
    snprintf(why, size,
             "the history has no snapshot yet: the first is taken with the "
             "first timeline sample");
  else if (st.budget != 0)
    snprintf(why, size,
             "the history is off: UV_PPROF_HISTORY_MB=%.2f was too small for "
             "one snapshot of this process (raise it)",
             (double)st.budget / 1048576.0);
  else if (uv_pprof__timeline_interval() > 0)
    snprintf(why, size,
             "the history is off: UV_PPROF_HISTORY_MB is 0 (set it to a "
             "budget in MiB, default 8)");
  else
    snprintf(why, size,
             "the history is off: start the process with "
             "UV_PPROF_TIMELINE=<seconds> (each timeline sample then keeps a "
             "snapshot; UV_PPROF_HISTORY_MB=<MiB> sets their budget, "
             "default 8)");
  return UV_ENOENT;
}

int uv_pprof__when_place(const char* name, const uv_pprof__when_t* w,
                         int64_t now, uv_pprof__placed_t* out, char* why,
                         size_t size) {
  size_t count = uv_pprof__history_count();
  int64_t oldest;
  int64_t slack = (int64_t)uv_pprof__timeline_interval() * SECOND_NS / 2;
  int64_t started = process_start();
  char when[40];

  memset(out, 0, sizeof(*out));
  if (count == 0)
    return UV_ENOENT;
  oldest = uv_pprof__history_time(0);
  if (w->start) {
    out->index = 0;
  } else {
    if (started != 0 && w->time_ns < started - SECOND_NS) {
      uv_pprof__format_time(started, when, sizeof(when));
      snprintf(why, size,
               "invalid value for \"%s\" - %s is older than the process, "
               "which started at %s",
               name, w->text, when);
      return UV_EINVAL;
    }
    out->index = uv_pprof__history_nearest(w->time_ns);
    out->before_history = w->time_ns < oldest - slack;
  }
  out->time_ns = uv_pprof__history_time(out->index);
  out->age_ns = now - out->time_ns;
  return 0;
}

void uv_pprof__when_note(const char* name, const uv_pprof__when_t* w,
                         const uv_pprof__placed_t* p, char* note, size_t size) {
  char when[40];
  char age[32];

  uv_pprof__format_time(p->time_ns, when, sizeof(when));
  uv_pprof__format_age(p->age_ns, age, sizeof(age));
  if (p->before_history)
    snprintf(note, size,
             "%s=%s is older than the history, which starts at %s (%s ago): "
             "that oldest snapshot was used",
             name, w->text, when, age);
  else
    snprintf(note, size, "%s=%s: the snapshot of %s (%s ago)", name, w->text,
             when, age);
}
