/*
 * bench/floor.c: the C floor of the transport benchmark.
 *
 * The least a client built on libcurl's multi interface can spend per
 * request: N GETs of one URL, K in flight, K easy handles reused for the
 * whole run (so libcurl keeps K keep-alive connections in its cache), the
 * body discarded, no parsing, no allocation per request. curl_multi_poll
 * instead of an event loop: with one URL and one thread nothing is gained by
 * libev here, and this is the floor the project's libev + Lua client is
 * compared to.
 *
 * usage: floor URL N K [METHOD [BODY_BYTES]]
 *   METHOD GET (default), HEAD, PUT or POST; PUT and POST send BODY_BYTES
 *   (default 0) bytes of 'x' from one buffer, without Content-Type or
 *   Expect headers (as the project's client sends a string body). The client
 *   benchmark (bench/client.py) uses them for the unsigned equivalent of
 *   each AWS call.
 *   Exit 0 if every response was a 200, 1 otherwise. The last line on stdout
 *   is "floor: setup_cpu_s=S calls_wall_s=W": the process CPU before the
 *   first request (clock(3)) and the wall time of the requests.
 *
 * Built by bench/run: cc -O2 -Wall -Wextra -Werror floor.c -lcurl
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    *(size_t *)userdata += size * nmemb;
    return size * nmemb;
}

static long parse_count(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "floor: %s must be a positive integer, got '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s URL N K [METHOD [BODY_BYTES]]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    long n = parse_count(argv[2], "N"), k = parse_count(argv[3], "K");
    if (k > n)
        k = n;
    const char *method = argc > 4 ? argv[4] : "GET";
    int has_body = strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0;
    if (!has_body && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        fprintf(stderr, "floor: METHOD must be GET, HEAD, PUT or POST, got '%s'\n", method);
        return 2;
    }
    long body_len = 0;
    if (argc > 5) {
        body_len = strcmp(argv[5], "0") == 0 ? 0 : parse_count(argv[5], "BODY_BYTES");
        if (!has_body) {
            fprintf(stderr, "floor: BODY_BYTES needs METHOD PUT or POST\n");
            return 2;
        }
    }
    char *body = has_body ? malloc((size_t)body_len + 1) : NULL;
    if (has_body && !body)
        return 1;
    if (body)
        memset(body, 'x', (size_t)body_len);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    CURLM *multi = curl_multi_init();
    CURL **easy = calloc((size_t)k, sizeof *easy);
    if (!multi || !easy)
        return 1;
    /* Room in the connection cache for one connection per handle. */
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, k);

    struct curl_slist *hdrs = NULL;
    if (has_body) {
        hdrs = curl_slist_append(hdrs, "Content-Type:");
        hdrs = curl_slist_append(hdrs, "Expect:");
        if (!hdrs)
            return 1;
    }

    size_t bytes = 0;
    long started = 0, done = 0, failed = 0;
    double setup_cpu = (double)clock() / CLOCKS_PER_SEC;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (long i = 0; i < k; i++) {
        easy[i] = curl_easy_init();
        if (!easy[i])
            return 1;
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &bytes);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        if (strcmp(method, "HEAD") == 0) {
            curl_easy_setopt(easy[i], CURLOPT_NOBODY, 1L);
        } else if (has_body) {
            curl_easy_setopt(easy[i], CURLOPT_CUSTOMREQUEST, method);
            curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdrs);
        }
        curl_multi_add_handle(multi, easy[i]);
        started++;
    }

    while (done < n) {
        int running = 0, queued;
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            return 1;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(multi, &queued))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            CURLcode result = msg->data.result; /* read before the handle is re-added */
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (result != CURLE_OK || status != 200) {
                if (failed < 5)
                    fprintf(stderr, "floor: %s (status %ld)\n", curl_easy_strerror(result), status);
                failed++;
            }
            done++;
            curl_multi_remove_handle(multi, e);
            if (started < n) {
                /* Same handle, same options: libcurl reuses its connection. */
                curl_multi_add_handle(multi, e);
                started++;
            }
        }
        if (done < n && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
            return 1;
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("floor: %ld requests, %ld failed, %zu body bytes, %.3f s, %.0f req/s\n",
           done, failed, bytes, secs, (double)done / secs);
    printf("floor: setup_cpu_s=%.6f calls_wall_s=%.6f\n", setup_cpu, secs);

    for (long i = 0; i < k; i++)
        curl_easy_cleanup(easy[i]);
    free(easy);
    free(body);
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
