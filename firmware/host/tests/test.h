/* A minimal test runner: TEST(name) defines and registers a test; CHECK
 * records a failure with file:line and goes on; REQUIRE stops the test. */
#ifndef HOST_TEST_H
#define HOST_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
extern int test_failures_in_current;

#define TEST(name)                                                                    \
    static void name(void);                                                           \
    __attribute__((constructor)) static void reg_##name(void) { test_register(#name, name); } \
    static void name(void)

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            printf("    %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            test_failures_in_current++;                                               \
        }                                                                             \
    } while (0)

#define REQUIRE(cond)                                                                 \
    do {                                                                              \
        if (!(cond)) {                                                                \
            printf("    %s:%d: required: %s\n", __FILE__, __LINE__, #cond);            \
            test_failures_in_current++;                                               \
            return;                                                                   \
        }                                                                             \
    } while (0)

#define CHECK_EQ(a, b)                                                                \
    do {                                                                              \
        long long a_ = (long long)(a), b_ = (long long)(b);                           \
        if (a_ != b_) {                                                               \
            printf("    %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, \
                   #b, a_, b_);                                                       \
            test_failures_in_current++;                                               \
        }                                                                             \
    } while (0)

#endif
