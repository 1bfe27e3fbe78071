#!/usr/bin/env bash
# Resource-aware local scheduling (issue 5): local tasks that declare cpu/memory start only
# while the running tasks' requests fit (--local-cpus / --local-memory); GPU indices are
# handed out through CUDA_VISIBLE_DEVICES and never shared by tasks running at once; a step
# that can never fit is refused before anything runs.
. "$(dirname "$0")/common.inc"

mkdir -p running gpus
cat > flow.yaml <<YAML
name: res
steps:
  start:
    run: echo '[0,1,2,3,4,5,6,7]' > "\$MFLOW_OUTPUT_DIR/items"
    foreach: items
    next: heavy
  heavy:
    resources: {cpu: 2, memory: 1000, gpu: 1}
    run: |
      touch $T/running/\$MFLOW_TASK_ID
      echo "\$(ls $T/running | wc -l) \$MFLOW_CPUS" >> $T/observed
      # claim the GPU index; a second holder would find the file present
      if ! mkdir $T/gpus/\$CUDA_VISIBLE_DEVICES 2>/dev/null; then echo "GPU \$CUDA_VISIBLE_DEVICES shared" >> $T/errors; fi
      sleep 0.3
      rmdir $T/gpus/\$CUDA_VISIBLE_DEVICES
      rm $T/running/\$MFLOW_TASK_ID
    next: join
  join:
    join: true
    run: "true"
    next: end
  end:
    run: "true"
YAML
# cpu: 5 cpus fit two tasks of 2; memory and gpus are plentiful.
MFLOW_LOCAL_GPUS=8 "$MFLOW" run flow.yaml -q --local-cpus 5 --local-memory 100000 > /dev/null
test "$(sort -n observed | tail -1 | cut -d' ' -f1)" = 2
grep -q " 2$" observed   # MFLOW_CPUS is the task's cpu request
test ! -e errors

# memory: 2500 MB fits two tasks of 1000.
rm -f observed
MFLOW_LOCAL_GPUS=8 "$MFLOW" run flow.yaml -q --local-cpus 64 --local-memory 2500 > /dev/null
test "$(sort -n observed | tail -1 | cut -d' ' -f1)" = 2

# gpus: three GPUs, never shared.
rm -f observed
"$MFLOW" run flow.yaml -q --local-cpus 64 --local-memory 100000 --local-gpus 3 > /dev/null
max=$(sort -n observed | tail -1 | cut -d' ' -f1)
test "$max" -le 3
test ! -e errors

# a step that can never fit is refused up front, naming the flag to use.
expect_code 4 "$MFLOW" run flow.yaml --local-cpus 64 --local-memory 100000 --local-gpus 0 2> err.txt
contains err.txt "asks for 1 GPU(s) but this machine has 0"
contains err.txt "--with kubernetes"
test ! -e observed || test "$(wc -l < observed)" = 8

# GPU ids come from mflow's own CUDA_VISIBLE_DEVICES; a step without a gpu request sees none.
cat > gpu.yaml <<'YAML'
name: gpu
steps:
  start:
    resources: {gpu: 1}
    run: echo "with=[$CUDA_VISIBLE_DEVICES]"
    next: end
  end:
    run: echo "without=[${CUDA_VISIBLE_DEVICES-unset}]"
YAML
CUDA_VISIBLE_DEVICES=5,7 MFLOW_LOCAL_GPUS=2 "$MFLOW" run gpu.yaml -q > gpu.txt
contains gpu.txt "with=[5]"
contains gpu.txt "without=[]"
MFLOW_LOCAL_GPUS=abc expect_code 2 "$MFLOW" run gpu.yaml -q 2> err.txt
contains err.txt "MFLOW_LOCAL_GPUS=abc: expected a whole number of GPUs"
