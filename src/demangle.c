/* C++ linker names made readable for the text views, in the short form
 * go tool pprof shows by default: demangled by the process's own C++
 * runtime (__cxa_demangle, looked up, never linked: a C host has none and
 * keeps the linker names), then without parameter lists, template
 * arguments and clone suffixes. Protos keep the linker names, which pprof
 * demangles itself in the mode its user picks. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

typedef char* (*cxa_demangle_fn)(const char* name, char* buf, size_t* len,
                                 int* status);

/* Index just past the group that opens at s[i] ('(' or '<'), counting
 * nested groups of both kinds; the string's end when unbalanced. */
static size_t skip_group(const char* s, size_t i) {
  int depth = 0;

  for (; s[i] != '\0'; i++) {
    if (s[i] == '(' || s[i] == '<')
      depth++;
    else if ((s[i] == ')' || s[i] == '>') && --depth == 0)
      return i + 1;
  }
  return i;
}

static int ends_with(const char* s, size_t len, const char* suffix) {
  size_t n = strlen(suffix);

  return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* s[0..len) ends with the keyword "operator" (not "my_operator"). */
static int ends_with_operator(const char* s, size_t len) {
  return ends_with(s, len, "operator") &&
         (len == 8 || s[len - 9] == ':' || s[len - 9] == ' ');
}

/* In place: "ns::Wrap<T>::OnRead(uv_stream_s*, long) const" becomes
 * "ns::Wrap::OnRead", "void f<int>(int)" becomes "f", "{lambda(int)#1}"
 * becomes "{lambda#1}". The operators named by the brackets themselves
 * ("operator()", "operator<") and "(anonymous namespace)" stay. */
static void simplify(char* s) {
  static const char* const tails[] = {" const", " volatile", " &&", " &"};
  size_t r = 0;
  size_t w = 0;
  size_t i;
  int braces = 0;

  while (s[r] != '\0') {
    char c = s[r];
    braces += c == '{';
    braces -= c == '}';
    if (ends_with_operator(s, w) && (c == '(' || c == '<')) {
      s[w++] = s[r++];
      if (c == '(' && s[r] == ')')
        s[w++] = s[r++];
      else if (c == '<' && (s[r] == '<' || s[r] == '='))
        s[w++] = s[r++];
      continue;
    }
    if (c == '(' && strncmp(s + r, "(anonymous namespace)", 21) == 0) {
      memmove(s + w, s + r, 21);
      w += 21;
      r += 21;
      continue;
    }
    if (c == '(' || c == '<') {
      r = skip_group(s, r);
      continue;
    }
    if (c == ' ' && strncmp(s + r, " [clone ", 8) == 0)
      break;
    /* A space outside braces and operator names ends a return type. */
    if (c == ' ' && braces == 0 && !ends_with_operator(s, w) &&
        s[r + 1] != '[' && s[r + 1] != '&' &&
        strncmp(s + r, " const", 6) != 0 &&
        strncmp(s + r, " volatile", 9) != 0) {
      w = 0;
      r++;
      continue;
    }
    s[w++] = s[r++];
  }
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(tails);) {
    if (ends_with(s, w, tails[i])) {
      w -= strlen(tails[i]);
      i = 0; /* "f() const &" loses both */
    } else {
      i++;
    }
  }
  s[w] = '\0';
}

char* uv_pprof__demangle(const char* name) {
  cxa_demangle_fn demangle;
  char* out;
  int status = -1;

  if (name == NULL || strncmp(name, "_Z", 2) != 0)
    return NULL;
  demangle = (cxa_demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
  if (demangle == NULL)
    return NULL;
  out = demangle(name, NULL, NULL, &status);
  if (status != 0 || out == NULL) {
    free(out);
    return NULL;
  }
  simplify(out);
  if (out[0] == '\0') { /* nothing left to show: keep the linker's */
    free(out);
    return NULL;
  }
  return out;
}
