import { parseBuildStep } from './build-step';

describe('parseBuildStep', () => {
  // Lines as buildah 1.28 prints them for `buildah bud` (checked with a two-stage build here).
  test.each([
    ['STEP 1/3: FROM scratch', { step: 1, steps: 3 }],
    ['STEP 3/3: LABEL a=b', { step: 3, steps: 3 }],
    ['STEP 12/40: RUN echo "STEP 1/2: not this"', { step: 12, steps: 40 }],
    ['[1/2] STEP 2/3: COPY f /f', { step: 2, steps: 3, stage: 1, stages: 2 }],
    ['[2/2] STEP 1/3: FROM scratch', { step: 1, steps: 3, stage: 2, stages: 2 }],
  ])('%s', (line, expected) => {
    expect(parseBuildStep(line)).toEqual(expected);
  });

  test.each([
    ['COMMIT oci:/tmp/out:image'],
    ['[2/2] COMMIT oci:/tmp/out:image'],
    ['Copying blob sha256:82795beaa57c'],
    ['  STEP 1/3: indented output of a RUN'],
    ['STEP 1/3 without a colon'],
    ['STEP 0/3: no step zero'],
    ['STEP 4/3: past the last step'],
    ['[3/2] STEP 1/1: past the last stage'],
    ['step 1/3: lower case'],
    [''],
  ])('not a step: %s', (line) => {
    expect(parseBuildStep(line)).toBeUndefined();
  });
});
