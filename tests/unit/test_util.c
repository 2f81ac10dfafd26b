/* Unit tests: error reporting and fd helpers. */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/error.h"
#include "util/fd.h"

static void fail_sets_errno_and_message(void **state)
{
    g_autoptr(GError) err = NULL;

    assert_int_equal(vdpad_fail(&err, EINVAL, "dev %s: queue %u bad", "n0", 3u), -EINVAL);
    assert_non_null(err);
    assert_int_equal(err->code, EINVAL);
    assert_string_equal(err->message, "dev n0: queue 3 bad");
    assert_int_equal(vdpad_error_errno(err), -EINVAL);
    assert_int_equal(vdpad_prefix_error(&err, "front: "), -EINVAL);
    assert_string_equal(err->message, "front: dev n0: queue 3 bad");
    /* a NULL error pointer still yields the errno */
    assert_int_equal(vdpad_fail(NULL, ENOMEM, "x"), -ENOMEM);
}

static void foreign_error_maps_to_eio(void **state)
{
    g_autoptr(GError) err = g_error_new_literal(G_FILE_ERROR, G_FILE_ERROR_FAILED, "x");

    assert_int_equal(vdpad_error_errno(err), -EIO);
    assert_int_equal(vdpad_error_errno(NULL), -EIO);
}

static void fd_replace_dup_and_autoclose(void **state)
{
    int slot = -1;
    int probe;

    {
        g_auto(vdpad_fd) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(vdpad_fd_replace_dup(&slot, fd), 0);
        assert_true(slot >= 0 && slot != fd);
        probe = fd;
    }
    /* the scoped fd is closed, the copy is alive */
    assert_int_equal(fcntl(probe, F_GETFD), -1);
    assert_true(fcntl(slot, F_GETFD) >= 0);
    assert_int_equal(vdpad_fd_replace_dup(&slot, -1), 0);
    assert_int_equal(slot, -1);
    assert_int_equal(vdpad_fd_replace_dup(&slot, 1000000), -EBADF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fail_sets_errno_and_message),
        cmocka_unit_test(foreign_error_maps_to_eio),
        cmocka_unit_test(fd_replace_dup_and_autoclose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
