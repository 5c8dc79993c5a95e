set -x; which python pip; python -c "import torch; print(torch.__version__)"
python -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl -q && export PYTHONPATH=/tmp/site
python -m pip install --no-deps --no-build-isolation --no-index -e . -q 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.used --format=csv
common="--outliers 0.4 --start huber --inputs input target residual --truncate 0 --meta-lr 1e-3 --validation-size 256 --validate-every 10 --outer-steps 5000 --max-minutes 6.5 --device cuda"
python -m learnedloss.cli meta-train sine $common --inner-steps 100 --inner-lr 0.05 --meta-batch 512 --out $OUT/g1 > $OUT/g1.log 2>&1 &
python -m learnedloss.cli meta-train sine $common --inner-steps 100 --inner-lr 0.1 --meta-batch 512 --out $OUT/g2 > $OUT/g2.log 2>&1 &
python -m learnedloss.cli meta-train sine $common --inner-steps 30 --inner-lr 0.1 --meta-batch 1024 --out $OUT/g3 > $OUT/g3.log 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
wait
ls -R $OUT | head -50
for g in g1 g2 g3; do tail -c 300 $OUT/$g.log; echo; done
