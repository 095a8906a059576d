/* The strata CLI end to end: `strata model` prints PyTorch's wording with group markers,
 * bad command lines and bad specs fail with a message naming the value and a non-zero
 * status, and `strata train` runs a short real job on Fashion-MNIST. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Runs the CLI with args (a shell fragment), capturing stdout and stderr together into a
 * malloc'd string. Returns the exit status. */
static int run_cli(const char *args, char **out)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", STRATA_CLI, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect(const char *args, int status, const char *const *needles)
{
    char *out;
    int st = run_cli(args, &out);
    int ok = st == status;
    for (int i = 0; needles[i]; i++)
        if (!strstr(out, needles[i])) {
            print_error("strata %s: missing '%s'\n", args, needles[i]);
            ok = 0;
        }
    if (!ok) print_error("strata %s exited %d (expected %d):\n%s\n", args, st, status, out);
    free(out);
    assert_true(ok);
}

static void test_model_vgg16_bn(void **state)
{
    expect("model vgg16_bn",
           0,
           (const char *const[]){
               "(0): Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n",
               "(1): BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, "
               "track_running_stats=True)\n",
               "(2): ReLU(inplace)\n",
               "(6): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n",
               "(43): MaxPool2d(",
               "layer group 0: body children 0-21, 1,737,792 parameters",
               "layer group 1: body children 22-43, 12,985,344 parameters",
               "layer group 2: head",
               "(0): AdaptiveConcatPool2d(",
               "(8): Linear(in_features=512, out_features=1000, bias=True)",
               NULL});
}

static void test_model_resnet34(void **state)
{
    expect("model resnet34 --head original",
           0,
           (const char *const[]){
               "21,797,672 parameters",
               "(0): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)",
               "(3): MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)",
               "(downsample): Sequential(",
               "(0): Conv2d(64, 128, kernel_size=(1, 1), stride=(2, 2), bias=False)",
               "layer group 1: body children 6-7",
               "(0): AdaptiveAvgPool2d(output_size=(1, 1))",
               "(2): Linear(in_features=512, out_features=1000, bias=True)",
               NULL});
    expect("model resnet34 --freeze-to -1 --input 3x64x64 --classes 10", 0,
           (const char *const[]){"children 0-5, 1,347,904 parameters, frozen",
                                 /* BN1d(1024) 2,048 + Linear(1024, 512) 524,800 + BN1d(512) 1,024 + Linear(512, 10) 5,130 */
                                 "layer group 2: head, 533,002 parameters ----", NULL});
    expect("model --list", 0, (const char *const[]){"resnet50\n", "vgg19_bn\n", "mlp\n", NULL});
}

static void test_model_bad(void **state)
{
    expect("model resnet35", 1, (const char *const[]){"unknown model 'resnet35'", NULL});
    expect("model resnet34 --cut 11", 1, (const char *const[]){"cut 11", NULL});
    expect("model resnet34 --split 6,4", 1, (const char *const[]){"4 follows 6", NULL});
    expect("model resnet34 --split 0", 1, (const char *const[]){"split 0", NULL});
    expect("model resnet34 --split 9", 1, (const char *const[]){"split 9", NULL});
    expect("model resnet34 --split 6,x", 2, (const char *const[]){"'x'", NULL});
    expect("model cnn --input 3x0x28", 2, (const char *const[]){"3x0x28", NULL});
    expect("model cnn --classes -4", 2, (const char *const[]){"'-4'", NULL});
    expect("model mlp --widths 64,-1 --input 1x28x28", 1, (const char *const[]){"width -1", NULL});
    expect("model cnn --head tiny", 2, (const char *const[]){"'tiny'", NULL});
    expect("model cnn --frobnicate 3", 2, (const char *const[]){"--frobnicate", NULL});
    expect("model", 2, (const char *const[]){"missing model NAME", NULL});
    expect("model vgg16 --input 3x8x8", 1, (const char *const[]){"MaxPool2d", NULL});
    expect("model resnet34 --freeze-to 5", 1, (const char *const[]){"freeze_to 5", NULL});
    expect("dance", 2, (const char *const[]){"unknown command 'dance'", NULL});
}

static void test_train_bad(void **state)
{
    expect("train --data /nonexistent/dir --epochs 1", 1,
           (const char *const[]){"/nonexistent/dir", NULL});
    expect("train --epochs 0", 2, (const char *const[]){"--epochs", "'0'", NULL});
    expect("train --lr abc", 2, (const char *const[]){"'abc'", NULL});
    expect("train --arch resnet35 --max-batches 1", 1,
           (const char *const[]){"unknown model 'resnet35'", NULL});
    expect("train --batch-size 100000 --arch mlp", 1,
           (const char *const[]){"batch size 100000", NULL});
}

/* A short real run: the mlp on Fashion-MNIST for 150 batches learns something. */
static void test_train_runs(void **state)
{
    char *out;
    int st = run_cli("train --arch mlp --widths 128 --epochs 1 --max-batches 150 --log-every 50",
                     &out);
    if (st != 0) print_error("%s\n", out);
    assert_int_equal(st, 0);
    const char *p = strstr(out, "test accuracy ");
    assert_non_null(p);
    double acc = atof(p + strlen("test accuracy "));
    if (acc < 0.70) print_error("test accuracy %.4f after 150 batches\n%s\n", acc, out);
    assert_true(acc >= 0.70);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_vgg16_bn), cmocka_unit_test(test_model_resnet34),
        cmocka_unit_test(test_model_bad),      cmocka_unit_test(test_train_bad),
        cmocka_unit_test(test_train_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
