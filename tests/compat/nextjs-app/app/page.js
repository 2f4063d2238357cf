// An ISR page: regenerated at most every 60 s, so Next answers with
// `Cache-Control: s-maxage=60, stale-while-revalidate`.
export const revalidate = 60;

export default function Home() {
  return <main>next home rendered at {new Date().toISOString()}</main>;
}
