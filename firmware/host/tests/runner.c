/* Runs every registered test. With --expect-bug NAME (a build with that
 * seeded bug), it succeeds only if the test guarding against that bug fails:
 * proof that the tests catch it. */
#include <stdlib.h>

#include "test.h"

#define MAX_TESTS 256

static struct {
    const char *name;
    test_fn fn;
    bool failed;
} tests[MAX_TESTS];
static int n_tests;
int test_failures_in_current;

void test_register(const char *name, test_fn fn)
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

/* Which test must fail when the core is built with each seeded bug. */
static const struct {
    const char *bug, *test;
} guards[] = {
    { "qos2_double_delivery", "client_qos2_retransmission_is_not_delivered_again" },
    { "no_pubrel_resend", "client_resent_pubrel_after_pubrec" },
    { "forget_inflight_on_reboot", "client_inflight_survives_reboot" },
    { "wrong_will_topic", "client_connect_carries_will_user_pass" },
    { "no_dup_flag", "client_resent_publish_has_dup" },
    { "tight_reconnect", "client_reconnect_backs_off_exponentially" },
    { "ignore_receive_maximum", "client5_flow_control_never_exceeds_receive_maximum" },
};

int main(int argc, char **argv)
{
    const char *bug = NULL;
    if (argc == 3 && strcmp(argv[1], "--expect-bug") == 0)
        bug = argv[2];
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        test_failures_in_current = 0;
        tests[i].fn();
        tests[i].failed = test_failures_in_current != 0;
        printf("%s %s\n", tests[i].failed ? "FAIL" : "pass", tests[i].name);
        if (tests[i].failed)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    if (!bug)
        return failed ? 1 : 0;
    for (size_t g = 0; g < sizeof guards / sizeof guards[0]; g++) {
        if (strcmp(guards[g].bug, bug) != 0)
            continue;
        for (int i = 0; i < n_tests; i++)
            if (strcmp(tests[i].name, guards[g].test) == 0) {
                printf("seeded bug %s: guard test %s %s\n", bug, guards[g].test,
                       tests[i].failed ? "FAILED, as it must: the bug is caught"
                                       : "PASSED: the bug went unnoticed");
                return tests[i].failed ? 0 : 1;
            }
        printf("seeded bug %s: guard test %s not found\n", bug, guards[g].test);
        return 1;
    }
    printf("seeded bug %s: no guard test listed in runner.c\n", bug);
    return 1;
}
