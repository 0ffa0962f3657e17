// tap's coverage map (package.json "tap"."coverage-map"): every test file is measured against
// src/ only, so generated code (dist/, bench/.build/), examples and test helpers stay out of
// the coverage report and of the floor it is checked against.
export default () => 'src/**/*.ts'
