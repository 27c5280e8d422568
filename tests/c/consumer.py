"""A Python host's use of Encore's C library through ctypes, as a test: load a bundle, rerank,
refuse a bad file, a session with an append. Prints each ranking ("ranking NAME id:score ...")
for the Rust test to compare with the Rust library; exits non-zero on the first failed check.

    python3 consumer.py LIBRARY_PATH BUNDLE_PATH
"""
import ctypes as C
import sys

OK, NULL_ARGUMENT, INVALID_ARGUMENT, INVALID_BUNDLE, REFUSED, INTERNAL = range(6)
SURFACE_KIDS, DEVICE_FROM_HISTORY = 2, 255
HISTORY, CANDIDATES = 6, 20


class History(C.Structure):
    _fields_ = [
        ("len", C.c_size_t),
        ("items", C.POINTER(C.c_uint32)),
        ("timestamps", C.POINTER(C.c_int64)),
        ("actions", C.POINTER(C.c_uint8)),
        ("durations", C.POINTER(C.c_float)),
        ("surfaces", C.POINTER(C.c_uint8)),
        ("devices", C.POINTER(C.c_uint8)),
        ("countries", C.POINTER(C.c_char_p)),
    ]


class Request(C.Structure):
    _fields_ = [
        ("surface", C.c_uint8),
        ("device", C.c_uint8),
        ("timestamp", C.c_int64),
        ("country", C.c_char_p),
        ("prompt", C.c_char_p),
    ]


def main(library, bundle_path):
    lib = C.CDLL(library)
    lib.encore_version.restype = C.c_char_p
    lib.encore_last_error.restype = C.c_char_p
    lib.encore_reranker_load.argtypes = [C.c_char_p, C.c_size_t, C.c_uint64, C.POINTER(C.c_void_p)]
    lib.encore_reranker_item_count.argtypes = [C.c_void_p]
    lib.encore_reranker_item_count.restype = C.c_size_t
    lib.encore_reranker_items.argtypes = [C.c_void_p, C.POINTER(C.c_uint32), C.c_size_t]
    ranking_args = [C.POINTER(C.c_uint32), C.c_size_t, C.POINTER(Request),
                    C.POINTER(C.c_uint32), C.POINTER(C.c_float), C.c_size_t]
    lib.encore_rerank.argtypes = [C.c_void_p, C.POINTER(History)] + ranking_args
    lib.encore_session_new.argtypes = [C.POINTER(History), C.POINTER(C.c_void_p)]
    lib.encore_session_append.argtypes = [C.c_void_p, C.POINTER(History)]
    lib.encore_session_len.argtypes = [C.c_void_p]
    lib.encore_session_len.restype = C.c_size_t
    lib.encore_session_rerank.argtypes = [C.c_void_p, C.c_void_p] + ranking_args
    lib.encore_session_free.argtypes = [C.c_void_p]
    lib.encore_reranker_free.argtypes = [C.c_void_p]

    def check(cond, what):
        if not cond:
            sys.exit(f"check failed: {what} (last error: {lib.encore_last_error().decode()})")

    data = open(bundle_path, "rb").read()
    print("version", lib.encore_version().decode())
    reranker = C.c_void_p()
    check(lib.encore_reranker_load(data, len(data), 0, C.byref(reranker)) == OK, "load")
    n = lib.encore_reranker_item_count(reranker)
    items = (C.c_uint32 * n)()
    check(lib.encore_reranker_items(reranker, items, n) == OK, "items")

    def history(first, count):
        arr = lambda T, xs: (T * count)(*xs)
        idx = range(first, first + count)
        return History(
            count,
            arr(C.c_uint32, [items[i] for i in idx]),
            arr(C.c_int64, [1700000000 + 3600 * i for i in idx]),
            arr(C.c_uint8, [1 if i % 3 == 1 else 0 for i in idx]),
            arr(C.c_float, [600.0 * i for i in idx]),
            arr(C.c_uint8, [1 if i % 2 else 0 for i in idx]),
            arr(C.c_uint8, [0] * count),
            arr(C.c_char_p, [None if i == 0 else b"FR" for i in idx]),
        )

    candidates = (C.c_uint32 * CANDIDATES)(*items[HISTORY:HISTORY + CANDIDATES])
    request = Request(SURFACE_KIDS, DEVICE_FROM_HISTORY, 1700100000, None, None)
    out_items = (C.c_uint32 * CANDIDATES)()
    out_scores = (C.c_float * CANDIDATES)()

    def show(name):
        print("ranking", name, " ".join(f"{out_items[k]}:{out_scores[k]!r}" for k in range(CANDIDATES)))

    whole = history(0, HISTORY)
    status = lib.encore_rerank(reranker, C.byref(whole), candidates, CANDIDATES, C.byref(request),
                               out_items, out_scores, CANDIDATES)
    check(status == OK, f"rerank returned {status}")
    check(sorted(out_items) == sorted(candidates), "a ranking of the candidates")
    show("stateless")

    prompted = Request(SURFACE_KIDS, DEVICE_FROM_HISTORY, 1700100000, None, b"kids")
    status = lib.encore_rerank(reranker, C.byref(whole), candidates, CANDIDATES, C.byref(prompted),
                               out_items, out_scores, CANDIDATES)
    check(status == OK, f"rerank (prompt) returned {status}")
    show("prompted")

    bad = C.c_void_p(1)
    status = lib.encore_reranker_load(data[: len(data) // 2], len(data) // 2, 0, C.byref(bad))
    check(status == INVALID_BUNDLE and not bad, f"truncated bundle: {status}")
    print("refused truncated", status, lib.encore_last_error().decode())

    session = C.c_void_p()
    check(lib.encore_session_new(C.byref(history(0, 3)), C.byref(session)) == OK, "session_new")
    check(lib.encore_session_append(session, C.byref(history(3, 3))) == OK, "append")
    check(lib.encore_session_len(session) == HISTORY, "session length")
    status = lib.encore_session_rerank(reranker, session, candidates, CANDIDATES, C.byref(request),
                                       out_items, out_scores, CANDIDATES)
    check(status == OK, f"session rerank returned {status}")
    show("session")
    lib.encore_session_free(session)
    lib.encore_reranker_free(reranker)
    print("failures 0")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
