/**
 * buildah's step lines, e.g. `STEP 2/5: RUN make` or, in a multi-stage build,
 * `[1/2] STEP 3/4: COPY . .` (stage 1 of 2, step 3 of that stage's 4), as buildah 1.28 prints
 * them for `buildah bud`.
 */
export interface BuildStep {
  step: number;
  steps: number;
  /** Present in multi-stage builds only. */
  stage?: number;
  stages?: number;
}

const STEP_LINE = /^(?:\[(\d{1,4})\/(\d{1,4})\] )?STEP (\d{1,5})\/(\d{1,5}): /;

/** The step a buildah output line starts, or undefined for any other line. */
export function parseBuildStep(line: string): BuildStep | undefined {
  const match = STEP_LINE.exec(line);
  if (!match) return undefined;
  const step = Number(match[3]);
  const steps = Number(match[4]);
  if (step < 1 || step > steps) return undefined;
  if (match[1] === undefined) return { step, steps };
  const stage = Number(match[1]);
  const stages = Number(match[2]);
  if (stage < 1 || stage > stages) return undefined;
  return { step, steps, stage, stages };
}
