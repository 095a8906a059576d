/* The strata CLI end to end: `strata model` prints PyTorch's wording with group markers,
 * bad command lines, configs and data fail with a message naming the value and a non-zero
 * status, and `strata train`, `eval` and `lr-find` run short jobs on synthetic data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

/* Runs the CLI with args (a shell fragment in which every "@T" stands for this program's
 * temporary directory), capturing stdout and stderr together into a malloc'd string.
 * Returns the exit status. */
static int run_cli(const char *args, char **out)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "%s ", STRATA_CLI);
    for (const char *a = args; *a && n < (int)sizeof cmd - 1; a++) {
        if (a[0] == '@' && a[1] == 'T') {
            n += snprintf(cmd + n, sizeof cmd - n, "%s", tu_tmpdir());
            a++;
        } else {
            cmd[n++] = *a;
        }
    }
    assert_true(n < (int)sizeof cmd - 8);
    snprintf(cmd + n, sizeof cmd - n, " 2>&1");
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

#define SYN STRATA_SOURCE "/tests/configs/synthetic.yaml"

/* The checkpoint commands' command lines; the files themselves: tests/ckpt_*.sh. */
static void test_ckpt_cli(void **state)
{
    expect("inspect", 2, (const char *const[]){"missing CKPT", NULL});
    expect("inspect a.h5 b.h5", 2, (const char *const[]){"unexpected argument 'b.h5'", NULL});
    expect("inspect a.h5 --deep", 2, (const char *const[]){"unknown option '--deep'", NULL});
    expect("inspect /nonexistent/ckpt.h5", 1,
           (const char *const[]){"/nonexistent/ckpt.h5: no such checkpoint", NULL});
    expect("train " SYN " --regroup", 2, (const char *const[]){"--regroup needs --resume", NULL});
    expect("train " SYN " --stop-after 0", 2, (const char *const[]){"--stop-after: '0'", NULL});
    expect("train " SYN " --resume=", 2, (const char *const[]){"--resume: expected a checkpoint path", NULL});
    expect("eval " SYN " --resume auto", 2, (const char *const[]){"unknown option '--resume'", NULL});
    expect("train " SYN " --resume /nonexistent/ckpt.h5", 1,
           (const char *const[]){"/nonexistent/ckpt.h5: no such checkpoint", NULL});
    /* --params: one line per tensor with its group and shape. */
    expect("model cnn --input 1x28x28 --classes 10 --params", 0,
           (const char *const[]){"param body.0.weight 0 32x1x3x3\n", "param head.2.weight 2 10x128\n",
                                 "buffer body.1.running_var 32\n", NULL});
}

static void test_train_bad(void **state)
{
    expect("train", 2, (const char *const[]){"missing CONFIG", NULL});
    expect("train /nonexistent/cfg.yaml", 1,
           (const char *const[]){"/nonexistent/cfg.yaml", "cannot open", NULL});
    expect("train " SYN " --set run.dir=@T/bad --set data.batch_size=100000", 1,
           (const char *const[]){"data.batch_size: data.batch_size 100000 x 1 rank", NULL});
    expect("train " SYN " --set run.dir=@T/bad --set model.arch=resnet35", 1,
           (const char *const[]){"unknown model 'resnet35'", NULL});
    expect("train " SYN " --set run.dir=@T/bad --set data.train=/nonexistent/x.h5",
           1, (const char *const[]){"/nonexistent/x.h5", NULL});
    expect("train " SYN " --set train.epoch=2", 1,
           (const char *const[]){"train.epoch", "did you mean", NULL});
    expect("train " SYN " --set 'groups.lr=[0.1,0.2]' --set run.dir=@T/bad", 1,
           (const char *const[]){"expected 3 values", "got 2", NULL});
    expect("train " SYN " --frobnicate", 2, (const char *const[]){"--frobnicate", NULL});
    expect("eval " SYN " --weights /nonexistent/w.h5", 1,
           (const char *const[]){"/nonexistent/w.h5", NULL});
    expect("data convert --images a", 2, (const char *const[]){"required", NULL});
    expect("train " SYN " --set run.dir=@T/bad --set groups.freeze_to=7", 1,
           (const char *const[]){"groups.freeze_to: freeze_to 7 is out of range", NULL});
    /* A validation set whose samples do not match the training data's. */
    expect("train " SYN " --set run.dir=@T/bad --set model.input=null "
           "--set data.valid=fashion-mnist",
           1, (const char *const[]){"data.valid (fashion-mnist) holds 1x28x28", "1x8x8", NULL});
    expect("train " SYN " --set run.dir=@T/bad --set data.augment.crop_padding=9", 1,
           (const char *const[]){"crop_padding 9 is larger than the 8x8 images", NULL});
    expect("train " SYN " --set run.dir=@T/bad --set model.classes=2", 1,
           (const char *const[]){"label", "2", NULL});
    expect("model mlp --input 1x65536x65537", 1,
           (const char *const[]){"4295032832 features", NULL});
    /* lr-find stops its sweep, rather than failing, when the loss diverges. */
    expect("lr-find " SYN " --set run.dir=@T/lrf --start 1e3 --end 1e30 --num-it 8", 0,
           (const char *const[]){"lr-find ran", NULL});
    expect("data convert --images /nonexistent/i.gz --labels /nonexistent/l.gz --out @T/x.h5",
           1, (const char *const[]){"/nonexistent/i.gz", NULL});
}

/* Images with more channels than the RGB-sized buffers of old: 5-channel synthetic data. */
static void test_train_many_channels(void **state)
{
    expect("train " SYN " --set run.dir=@T/5ch --set model.input=null "
           "--set 'data.synthetic.input=[5,4,4]' --set train.epochs=1",
           0, (const char *const[]){"valid accuracy", NULL});
}

/* A short real run on synthetic data: the loss falls, metrics and weights are written, and
 * eval reads the weights back. */
static void test_train_runs(void **state)
{
    char dir[256];
    tu_tmp_path(dir, sizeof dir, __func__);
    char args[1024], *out;
    snprintf(args, sizeof args, "train %s --set run.dir=%s --set train.epochs=2", SYN, dir);
    int st = run_cli(args, &out);
    if (st != 0) print_error("%s\n", out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "# effective config"));
    const char *p = strstr(out, "valid accuracy ");
    assert_non_null(p);
    p = strstr(p + 1, "valid accuracy ") ? strstr(p + 1, "valid accuracy ") : p;
    double acc = atof(p + strlen("valid accuracy "));
    if (acc < 0.9) print_error("valid accuracy %.4f\n%s\n", acc, out);
    assert_true(acc >= 0.9);
    free(out);

    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    double first = -1, last = -1;
    int valid_lines = 0;
    while (fgets(line, sizeof line, f)) {
        const char *q = strstr(line, "\"train_loss\": ");
        if (q) {
            last = atof(q + 14);
            if (first < 0) first = last;
            assert_non_null(strstr(line, "\"lr\": ["));
            assert_non_null(strstr(line, "\"samples_per_s\": "));
        }
        if (strstr(line, "\"valid_acc\": ")) valid_lines++;
    }
    fclose(f);
    assert_int_equal(valid_lines, 2);
    assert_true(first > 0 && last < first);

    snprintf(args, sizeof args, "eval %s --set run.dir=%s", SYN, dir);
    st = run_cli(args, &out);
    if (st != 0) print_error("%s\n", out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "weights.h5 on synthetic"));
    free(out);

    /* The effective config written into the run directory loads back. */
    snprintf(args, sizeof args, "train %s/config.yaml --set train.epochs=1 --set run.dir=%s/again",
             dir, dir);
    st = run_cli(args, &out);
    if (st != 0) print_error("%s\n", out);
    assert_int_equal(st, 0);
    free(out);
}

/* Reads run.dir/metrics.jsonl into a malloc'd string. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) print_error("cannot open %s\n", path);
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Two phases: the first (1 epoch = 16 steps of 32 samples) trains with groups 0 and 1
 * frozen, the second with nothing frozen, and the switch happens exactly at step 17. */
static void test_train_phases(void **state)
{
    char dir[256];
    tu_tmp_path(dir, sizeof dir, __func__);
    char args[1024], *out;
    snprintf(args, sizeof args,
             "train %s --set run.dir=%s --set train.log_every=1 --set "
             "'train.phases=[{name: head, epochs: 1, freeze_to: -1, lr: 0.05}, "
             "{name: all, epochs: 1, freeze_to: 0, lr: \"slice(0.005, 0.05)\"}]'",
             SYN, dir);
    int st = run_cli(args, &out);
    if (st != 0) print_error("%s\n", out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "phase 1/2 'head': 1 epoch(s), frozen groups: 0 1;"));
    assert_non_null(strstr(out, "phase 2/2 'all': 1 epoch(s), frozen groups: none;"));
    free(out);
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *m = read_file(path);
    /* 512 samples / 32 per batch = 16 steps per epoch. */
    assert_non_null(strstr(m, "{\"step\": 16, \"epoch\": 0, \"phase\": 0,"));
    assert_non_null(strstr(m, "{\"step\": 17, \"epoch\": 1, \"phase\": 1,"));
    const char *s16 = strstr(m, "{\"step\": 16, \"epoch\": 0, \"phase\": 0,");
    const char *s17 = strstr(m, "{\"step\": 17, \"epoch\": 1, \"phase\": 1,");
    assert_non_null(strstr(s16, "\"frozen\": [0, 1]"));
    assert_true(strstr(s16, "\"frozen\": [0, 1]") < strchr(s16, '\n'));
    assert_true(strstr(s17, "\"frozen\": []") < strchr(s17, '\n'));
    /* The second phase's slice: 0.005, ~0.0158, 0.05 at the one-cycle start (max/25). */
    assert_true(strstr(s17, "\"lr\": [0.0002, 0.000632, 0.002]") < strchr(s17, '\n'));
    free(m);
}

/* lr-find: fastai's geometric sweep from --start towards --end, its four suggestions printed,
 * the CSV and PNG written, the model
 * restored exactly (strata checks the validation loss before and after). */
static void test_lr_find(void **state)
{
    char dir[256];
    tu_tmp_path(dir, sizeof dir, __func__);
    char args[1024], *out;
    snprintf(args, sizeof args, "lr-find %s --set run.dir=%s --start 1e-5 --end 100 --num-it 40",
             SYN, dir);
    int st = run_cli(args, &out);
    if (st != 0) print_error("%s\n", out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "suggested lr"));
    assert_non_null(strstr(out, "(valley, fastai's default); also slide"));
    assert_non_null(strstr(out, ", minimum "));
    assert_non_null(strstr(out, ", steep "));
    assert_non_null(strstr(out, "weights restored"));
    free(out);
    char path[600];
    snprintf(path, sizeof path, "%s/lr_find.csv", dir);
    char *csv = read_file(path);
    assert_true(!strncmp(csv, "lr,loss,smoothed_loss\n", 22));
    double lr0 = atof(csv + 22);
    assert_float_equal(lr0, 1e-5, 1e-9);
    const char *second = strchr(csv + 22, '\n') + 1;
    /* fastai's sweep: lr_k = start (end/start)^(k/num_it), so the step is 1/40, not 1/39. */
    assert_float_equal(atof(second), 1e-5 * pow(1e7, 1.0 / 40), 1e-12);
    free(csv);
    snprintf(path, sizeof path, "%s/lr_find.png", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char sig[8];
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fclose(f);
    assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
}

/* The group setup: this program's temporary directory (every run.dir and file below). */
static int cli_setup(void **state)
{
    (void)state;
    return tu_tmpdir_make("strata-cli");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_vgg16_bn), cmocka_unit_test(test_model_resnet34),
        cmocka_unit_test(test_model_bad),      cmocka_unit_test(test_train_bad),
        cmocka_unit_test(test_train_runs),   cmocka_unit_test(test_train_phases),
        cmocka_unit_test(test_lr_find),      cmocka_unit_test(test_train_many_channels),
        cmocka_unit_test(test_ckpt_cli),
    };
    return cmocka_run_group_tests(tests, cli_setup, tu_group_teardown);
}
