/* A shared object with a GNU build ID and nothing else of note:
 * test-notes.c loads copies of it whose PT_NOTE headers lie. */
int notelib_answer(void);

int notelib_answer(void) {
  return 42;
}
