/* A desktop app's use of Encore's C library, as a test: load a bundle, rerank, refuse a bad
 * file and bad calls, a session with appends, titles pushed with vectors, contextual reranks by
 * the bundle's ranker. Prints each ranking ("ranking NAME id:score ...")
 * for the Rust test to compare with the Rust library, and exits non-zero on the first check
 * that fails.
 *
 *   consumer BUNDLE_PATH
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encore.h"

static int failures = 0;

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "check failed at line %d: %s: ", __LINE__, #cond);    \
      fprintf(stderr, __VA_ARGS__);                                         \
      fprintf(stderr, " (last error: %s)\n", encore_last_error());          \
      failures++;                                                           \
    }                                                                       \
  } while (0)

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *bytes = malloc((size_t)n);
  if (bytes && fread(bytes, 1, (size_t)n, f) != (size_t)n) {
    free(bytes);
    bytes = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return bytes;
}

static void print_ranking(const char *name, const uint32_t *items, const float *scores, size_t n) {
  printf("ranking %s", name);
  for (size_t i = 0; i < n; i++) printf(" %u:%.9g", items[i], scores[i]);
  printf("\n");
}

/* The ranking holds each candidate once, best first. */
static int is_ranking_of(const uint32_t *candidates, size_t n, const uint32_t *items, const float *scores) {
  for (size_t i = 0; i < n; i++) {
    size_t seen = 0;
    for (size_t j = 0; j < n; j++) seen += items[j] == candidates[i];
    if (seen != 1) return 0;
    if (i > 0 && !(scores[i - 1] >= scores[i])) return 0;
  }
  return 1;
}

#define HISTORY 6
#define CANDIDATES 20

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: consumer BUNDLE_PATH\n");
    return 2;
  }
  size_t len = 0;
  unsigned char *bytes = read_file(argv[1], &len);
  if (!bytes) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
  printf("version %s\n", encore_version());

  /* Load. */
  EncoreReranker *reranker = NULL;
  EncoreStatus status = encore_reranker_load(bytes, len, 0, &reranker);
  CHECK(status == ENCORE_STATUS_OK && reranker != NULL, "load returned %d", (int)status);
  if (!reranker) return 1;
  size_t n_items = encore_reranker_item_count(reranker);
  CHECK(n_items >= HISTORY + CANDIDATES, "%zu items", n_items);
  uint32_t *items = malloc(n_items * sizeof *items);
  CHECK(encore_reranker_items(reranker, items, n_items) == ENCORE_STATUS_OK, "items");
  printf("items %zu\n", n_items);

  /* A history of the first HISTORY titles with its context, candidates the next CANDIDATES. */
  int64_t times[HISTORY];
  uint8_t actions[HISTORY], surfaces[HISTORY], devices[HISTORY];
  float durations[HISTORY];
  const char *countries[HISTORY];
  for (int i = 0; i < HISTORY; i++) {
    times[i] = 1700000000 + 3600 * (int64_t)i;
    actions[i] = i % 3 == 1 ? ENCORE_ACTION_TRAILER : ENCORE_ACTION_PLAY;
    surfaces[i] = i % 2 ? ENCORE_SURFACE_SEARCH : ENCORE_SURFACE_HOME;
    devices[i] = ENCORE_DEVICE_TV;
    durations[i] = 600.0f * (float)i;
    countries[i] = i == 0 ? NULL : "FR";
  }
  EncoreHistory history = {HISTORY, items, times, actions, durations, surfaces, devices, countries};
  const uint32_t *candidates = items + HISTORY;
  EncoreRequest request = {ENCORE_SURFACE_KIDS, ENCORE_DEVICE_FROM_HISTORY, 1700100000, NULL, NULL};
  uint32_t ranked[CANDIDATES];
  float scores[CANDIDATES];
  status = encore_rerank(reranker, &history, candidates, CANDIDATES, &request, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "rerank returned %d", (int)status);
  CHECK(is_ranking_of(candidates, CANDIDATES, ranked, scores), "not a ranking of the candidates");
  print_ranking("stateless", ranked, scores, CANDIDATES);

  /* NULL request: the home surface, the rest from the history. */
  status = encore_rerank(reranker, &history, candidates, CANDIDATES, NULL, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "rerank (no request) returned %d", (int)status);
  print_ranking("home", ranked, scores, CANDIDATES);

  /* The bundle's prompt set "kids", and a name it has none for. */
  EncoreRequest prompted = {ENCORE_SURFACE_KIDS, ENCORE_DEVICE_FROM_HISTORY, 1700100000, NULL, "kids"};
  status = encore_rerank(reranker, &history, candidates, CANDIDATES, &prompted, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "rerank (prompt) returned %d", (int)status);
  print_ranking("prompted", ranked, scores, CANDIDATES);
  EncoreRequest unknown_prompt = {ENCORE_SURFACE_KIDS, ENCORE_DEVICE_FROM_HISTORY, 1700100000, NULL, "attic"};
  status = encore_rerank(reranker, &history, candidates, CANDIDATES, &unknown_prompt, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED, "unknown prompt set: %d", (int)status);
  printf("refused prompt %d %s\n", (int)status, encore_last_error());

  /* A member without history (no arrays at all): ranked under the prompt set from the request
     alone; without a prompt set, refused. */
  EncoreHistory none = {0, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  status = encore_rerank(reranker, &none, candidates, CANDIDATES, &prompted, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "rerank (no history, prompt) returned %d", (int)status);
  CHECK(is_ranking_of(candidates, CANDIDATES, ranked, scores), "no history: not a ranking");
  print_ranking("new_profile", ranked, scores, CANDIDATES);
  status = encore_rerank(reranker, &none, candidates, CANDIDATES, &request, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED, "no history, no prompt: %d", (int)status);
  printf("refused no_history %d %s\n", (int)status, encore_last_error());

  /* A bad file: truncated, and one flipped byte. */
  EncoreReranker *bad = (EncoreReranker *)1;
  status = encore_reranker_load(bytes, len / 2, 0, &bad);
  CHECK(status == ENCORE_STATUS_INVALID_BUNDLE && bad == NULL, "truncated bundle: %d", (int)status);
  printf("refused truncated %d %s\n", (int)status, encore_last_error());
  bytes[len - 5] ^= 0x40;
  status = encore_reranker_load(bytes, len, 0, &bad);
  CHECK(status == ENCORE_STATUS_INVALID_BUNDLE && bad == NULL, "corrupted bundle: %d", (int)status);
  printf("refused corrupted %d %s\n", (int)status, encore_last_error());
  bytes[len - 5] ^= 0x40;
  status = encore_reranker_load(bytes, len, 1000, &bad);
  CHECK(status == ENCORE_STATUS_INVALID_BUNDLE && bad == NULL, "over the limit: %d", (int)status);
  printf("refused limit %d %s\n", (int)status, encore_last_error());

  /* Bad calls, each refused with its status and a message; nothing written. */
  uint32_t unknown[2] = {candidates[0], 4000000000u};
  status = encore_rerank(reranker, &history, unknown, 2, NULL, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED && strstr(encore_last_error(), "candidate 1") != NULL,
        "unknown candidate: %d", (int)status);
  printf("refused candidate %d %s\n", (int)status, encore_last_error());
  status = encore_rerank(reranker, NULL, candidates, CANDIDATES, NULL, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_NULL_ARGUMENT, "NULL history: %d", (int)status);
  printf("refused null %d %s\n", (int)status, encore_last_error());
  status = encore_rerank(reranker, &history, candidates, CANDIDATES, NULL, ranked, scores, 3);
  CHECK(status == ENCORE_STATUS_INVALID_ARGUMENT, "small output: %d", (int)status);
  printf("refused capacity %d %s\n", (int)status, encore_last_error());
  EncoreRequest bad_request = {9, ENCORE_DEVICE_FROM_HISTORY, ENCORE_TIME_FROM_HISTORY, NULL, NULL};
  status = encore_rerank(reranker, &history, candidates, CANDIDATES, &bad_request, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_INVALID_ARGUMENT, "bad surface: %d", (int)status);
  printf("refused surface %d %s\n", (int)status, encore_last_error());
  int64_t backwards[HISTORY];
  memcpy(backwards, times, sizeof times);
  backwards[4] = 5;
  EncoreHistory out_of_order = history;
  out_of_order.timestamps = backwards;
  status = encore_rerank(reranker, &out_of_order, candidates, CANDIDATES, NULL, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED, "out of order: %d", (int)status);
  printf("refused order %d %s\n", (int)status, encore_last_error());

  /* A session: the first half of the history, a rerank, the second half appended in one call,
   * a rerank that must equal the stateless one over the whole history. */
  EncoreSession *session = NULL;
  EncoreHistory first = history;
  first.len = HISTORY / 2;
  CHECK(encore_session_new(&first, &session) == ENCORE_STATUS_OK && session, "session_new");
  status = encore_session_rerank(reranker, session, candidates, CANDIDATES, &request, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "session rerank (first half): %d", (int)status);
  print_ranking("session-first-half", ranked, scores, CANDIDATES);
  EncoreHistory second = {HISTORY - HISTORY / 2,   items + HISTORY / 2,   times + HISTORY / 2,
                          actions + HISTORY / 2,   durations + HISTORY / 2, surfaces + HISTORY / 2,
                          devices + HISTORY / 2,   countries + HISTORY / 2};
  CHECK(encore_session_append(session, &second) == ENCORE_STATUS_OK, "append");
  CHECK(encore_session_len(session) == HISTORY, "session holds %zu events", encore_session_len(session));
  status = encore_session_rerank(reranker, session, candidates, CANDIDATES, &request, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "session rerank: %d", (int)status);
  print_ranking("session", ranked, scores, CANDIDATES);
  uint32_t stateless[CANDIDATES];
  float stateless_scores[CANDIDATES];
  encore_rerank(reranker, &history, candidates, CANDIDATES, &request, stateless, stateless_scores, CANDIDATES);
  for (int i = 0; i < CANDIDATES; i++)
    CHECK(ranked[i] == stateless[i] && fabsf(scores[i] - stateless_scores[i]) <= 1e-4f,
          "session and stateless differ at %d", i);
  /* An event older than the last one: refused, the session unchanged. */
  int64_t old_time = 10;
  EncoreHistory old = {1, items, &old_time, NULL, NULL, NULL, NULL, NULL};
  status = encore_session_append(session, &old);
  CHECK(status == ENCORE_STATUS_REFUSED && encore_session_len(session) == HISTORY, "old append: %d", (int)status);
  printf("refused append %d %s\n", (int)status, encore_last_error());

  /* Titles the bundle lacks, pushed with int8 item vectors: a candidate (id 4000000000) and
   * the title of the history's first event (id 4000000001), statelessly and in a session. */
  size_t dim = encore_reranker_dim(reranker);
  CHECK(dim > 0 && encore_reranker_dim(NULL) == 0, "dim %zu", dim);
  int8_t *values = malloc(2 * dim);
  for (size_t k = 0; k < 2 * dim; k++) values[k] = (int8_t)((int)(k * 37 % 255) - 127);
  uint32_t vector_ids[2] = {4000000000u, 4000000001u};
  float vector_scales[2] = {0.01f, 0.02f};
  EncoreTitleVectors titles = {2, vector_ids, values, vector_scales};
  uint32_t pushed[CANDIDATES];
  memcpy(pushed, candidates, sizeof pushed);
  pushed[0] = vector_ids[0];
  uint32_t watched_items[HISTORY];
  memcpy(watched_items, items, sizeof watched_items);
  watched_items[0] = vector_ids[1];
  EncoreHistory watched = history;
  watched.items = watched_items;
  status = encore_rerank_pushed(reranker, &watched, pushed, CANDIDATES, &titles, &request, ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "rerank_pushed: %d", (int)status);
  CHECK(is_ranking_of(pushed, CANDIDATES, ranked, scores), "pushed: not a ranking");
  print_ranking("pushed", ranked, scores, CANDIDATES);
  EncoreSession *pushed_session = NULL;
  CHECK(encore_session_new(&watched, &pushed_session) == ENCORE_STATUS_OK, "pushed session_new");
  status = encore_session_rerank_pushed(reranker, pushed_session, pushed, CANDIDATES, &titles, &request,
                                        ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "session_rerank_pushed: %d", (int)status);
  print_ranking("pushed-session", ranked, scores, CANDIDATES);
  encore_session_free(pushed_session);
  /* The history's title not described: refused by position; a NaN scale: refused by id. */
  EncoreTitleVectors candidate_only = {1, vector_ids, values, vector_scales};
  status = encore_rerank_pushed(reranker, &watched, pushed, CANDIDATES, &candidate_only, &request, ranked, scores,
                                CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED, "undescribed history title: %d", (int)status);
  printf("refused history_title %d %s\n", (int)status, encore_last_error());
  float nan_scales[2] = {NAN, 0.02f};
  EncoreTitleVectors nan_scale = {2, vector_ids, values, nan_scales};
  status = encore_rerank_pushed(reranker, &watched, pushed, CANDIDATES, &nan_scale, &request, ranked, scores,
                                CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED, "NaN scale: %d", (int)status);
  printf("refused scale %d %s\n", (int)status, encore_last_error());
  free(values);

  /* The bundle's contextual ranker: a search with a query and α statelessly and in a session
   * (the same ranking), then "more like this" of the history's first title in that session;
   * an unknown task and a NaN α refused by name. */
  EncoreContext search = {"search", "star wa", ENCORE_NO_SOURCE, "FR", NULL, 0.5f, 1};
  status = encore_rerank_in_context(reranker, &history, candidates, CANDIDATES, &request, &search, ranked, scores,
                                    CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "rerank_in_context: %d", (int)status);
  CHECK(is_ranking_of(candidates, CANDIDATES, ranked, scores), "in context: not a ranking");
  print_ranking("in-context", ranked, scores, CANDIDATES);
  EncoreSession *context_session = NULL;
  CHECK(encore_session_new(&history, &context_session) == ENCORE_STATUS_OK, "context session_new");
  status = encore_session_rerank_in_context(reranker, context_session, candidates, CANDIDATES, &request, &search,
                                            ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "session_rerank_in_context: %d", (int)status);
  print_ranking("in-context-session", ranked, scores, CANDIDATES);
  EncoreContext more_like = {"more_like_this", NULL, items[0], NULL, NULL, 0.0f, 0};
  status = encore_session_rerank_in_context(reranker, context_session, candidates, CANDIDATES, &request, &more_like,
                                            ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_OK, "more like this: %d", (int)status);
  print_ranking("more-like-this-session", ranked, scores, CANDIDATES);
  EncoreContext kids_task = {"kids", NULL, ENCORE_NO_SOURCE, NULL, NULL, 0.0f, 0};
  status = encore_rerank_in_context(reranker, &history, candidates, CANDIDATES, &request, &kids_task, ranked, scores,
                                    CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED, "unknown task: %d", (int)status);
  printf("refused task %d %s\n", (int)status, encore_last_error());
  EncoreContext nan_alpha = {"search", "star wa", ENCORE_NO_SOURCE, NULL, NULL, NAN, 1};
  status = encore_session_rerank_in_context(reranker, context_session, candidates, CANDIDATES, &request, &nan_alpha,
                                            ranked, scores, CANDIDATES);
  CHECK(status == ENCORE_STATUS_REFUSED, "NaN alpha: %d", (int)status);
  printf("refused alpha %d %s\n", (int)status, encore_last_error());
  status = encore_rerank_in_context(reranker, &history, candidates, CANDIDATES, &request, NULL, ranked, scores,
                                    CANDIDATES);
  CHECK(status == ENCORE_STATUS_NULL_ARGUMENT, "NULL context: %d", (int)status);
  encore_session_free(context_session);

  encore_session_free(session);
  encore_session_free(NULL);
  encore_reranker_free(reranker);
  encore_reranker_free(NULL);
  free(items);
  free(bytes);
  printf("failures %d\n", failures);
  return failures ? 1 : 0;
}
